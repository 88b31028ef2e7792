# condi: the Confidence Distillation pipeline (docs/method.md).
#   snakemake --cores all                 (the default profile, workflow/profiles/default, applies)
#   snakemake --workflow-profile workflow/profiles/slurm     (a SLURM cluster: docs/cluster.md)
#   snakemake --report report.html        (tables and figures of the last run)
#   snakemake --cores all ablation        (the ablation, results/ablation.csv: not in the default)
# Every rule is a stage of the table in src/condi/pipeline.py, which also writes dvc.yaml
# (condi pipeline dvc), so the two DAGs cannot drift.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


# Tables I-V, the ambiguity table, metrics.json and the DVC plot, the figures and the per-stage
# times (results/, all in the report). The ablation is a target of its own (it trains 21 more
# students with the default params `ablation`): snakemake --cores all ablation
rule all:
    input:
        pl.targets(config),
    default_target: True


rule ablation:
    input:
        pl.targets(config, ablation=True),


onstart:
    # Create the MLflow store once, before parallel jobs race to create its schema. Tracking
    # never costs a result: without a store the jobs keep their records in .mlflow_pending/.
    shell(
        "condi tracking init > /dev/null || echo 'condi: going on without MLflow; "
        "`condi tracking import` sends the kept records later' >&2"
    )


onsuccess:
    # What this run made becomes DVC's too: `dvc status` clean, `dvc push` complete.
    condi.adoption.commit(config, since=STARTED)
    # Table III as the paper prints it, and where everything else is.
    if os.path.exists(pl.TABLE3_MD):
        print(f"\n{pl.TABLE3_MD}:\n\n" + open(pl.TABLE3_MD).read().rstrip() + "\n", flush=True)
    print(
        f"condi: results in results/ (per-stage times: {pl.STAGE_TIMES_MD}), each job's log "
        f"in {pl.LOGS}/<stage>/, the report: snakemake --report report.html",
        flush=True,
    )
