# condi: the Confidence Distillation pipeline (docs/method.md).
#   snakemake --cores all                 (the default profile, workflow/profiles/default, applies)
#   snakemake --workflow-profile workflow/profiles/slurm     (a SLURM cluster: docs/cluster.md)
#   snakemake --report report.html        (tables and figures of the last run)
#   snakemake --cores all ablation        (the ablation, results/ablation.csv: not in the default)
# Every rule is a stage of the table in src/condi/pipeline.py, which also writes dvc.yaml
# (condi pipeline dvc), so the two DAGs cannot drift.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# Every job, and this Snakemake too, runs this checkout's code: its src/ first on the path
# (also in a conda env that a shared --conda-prefix shares with other checkouts); the envs'
# post-deploy script installs condi from here (src/condi/condaenv.py, workflow/envs).
if (Path(workflow.basedir) / "src" / "condi").is_dir():
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))
import condi.condaenv
import condi.tracking

condi.condaenv.export_checkout(workflow.basedir)
# This run's id, which every job (SLURM's too) inherits: their MLflow runs nest under this
# invocation's run (condi.tracking; docs/cluster.md, "MLflow").
condi.tracking.export_invocation()


configfile: "params.yaml"


# Site settings a profile may give as `config:` (workflow/profiles/slurm/profile.yaml: how a
# GPU job asks for its GPU); they are no params (no result depends on them).
SITE = {key: config.pop(key) for key in ("gpu_model", "gpu_gres") if key in config}
if SITE.get("gpu_model") and SITE.get("gpu_gres"):
    raise WorkflowError("profile config: give gpu_model or gpu_gres, not both")


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
    # Create the MLflow store once, before parallel jobs race to create its schema, and this
    # invocation's parent run in each dataset's experiment. Tracking never costs a result:
    # without a store the jobs keep their records in .mlflow_pending/.
    shell(
        "condi tracking init --params params.yaml > /dev/null || echo 'condi: going on "
        "without MLflow; `condi tracking import` sends the kept records later' >&2"
    )


onsuccess:
    # What this run made becomes DVC's too: `dvc status` clean, `dvc push` complete.
    condi.adoption.commit(config, since=STARTED)
    # Table III as the paper prints it, and where everything else is.
    if Path(pl.TABLE3_MD).exists():
        table3 = Path(pl.TABLE3_MD).read_text().rstrip()
        print(f"\n{pl.TABLE3_MD}:\n\n{table3}\n", flush=True)
    print(
        f"condi: results in results/ (per-stage times: {pl.STAGE_TIMES_MD}), each job's log "
        f"in {pl.LOGS}/<stage>/, the report: snakemake --report report.html",
        flush=True,
    )
    shell("condi tracking end --status FINISHED > /dev/null || true")


onerror:
    shell("condi tracking end --status FAILED > /dev/null || true")
