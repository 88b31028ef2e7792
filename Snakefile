# condi: the Confidence Distillation pipeline (SPEC.md).
#   snakemake --cores all results/table3.csv      (add --use-conda where conda is available)
# Every rule calls a `condi` command; the command templates live in src/condi/pipeline.py and
# are shared with the generated dvc.yaml (condi pipeline dvc), so the two DAGs cannot drift.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"


rule all:
    input:
        TABLE3_CSV,
        TABLE3_MD,
    default_target: True


onstart:
    shell("condi tracking init > /dev/null")
