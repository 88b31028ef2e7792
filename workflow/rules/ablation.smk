# The ablation (SPEC 9, issue 9.3; params `ablation`): condi_sr under each pseudo-label source
# and detach switch beside st_ent, bce_conf and maxprob with the paper's switches, each trained
# for every seed; mean and std over the seeds. Not part of `rule all` (with the defaults it
# costs 21 student trainings and the crossfit teachers): run `snakemake --cores all ablation`
# (or results/ablation.csv); DVC: `dvc repro ablation/dvc.yaml`.


rule ablation:
    input:
        ABLATION_CSV,
        ABLATION_MD,


rule ablation_pseudo_labels:
    input:
        unpack(
            dvc_inputs(
                "ablation_pseudo_labels",
                index=INDEX,
                cache=CACHE,
                teacher=TEACHER,
            )
        ),
    output:
        labels=ABL_LABELS,
    params:
        config=section("ablation_pseudo_labels"),
    log:
        "logs/ablation/pseudo_labels/{dataset}_fold{fold}_{teacher}_{source}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=24 * 60,  # crossfit trains crossfit_folds teachers
    shell:
        SHELL["ablation_pseudo_labels"]


rule ablation_train_student:
    input:
        unpack(
            dvc_inputs(
                "ablation_train_student",
                index=INDEX,
                cache=CACHE,
                labels=ABL_LABELS,
            )
        ),
    output:
        model=ABL_STUDENT,
    params:
        config=section("ablation_train_student"),
    log:
        f"logs/ablation/train_student/{{dataset}}_fold{{fold}}_{pl.VARIANT}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=24 * 60,
    shell:
        SHELL["ablation_train_student"]


rule ablation_student_scores:
    input:
        unpack(
            dvc_inputs(
                "ablation_student_scores",
                index=INDEX,
                cache=CACHE,
                model=ABL_STUDENT,
            )
        ),
    output:
        scores=ABL_SCORES,
    params:
        config=section("ablation_student_scores"),
    log:
        f"logs/ablation/scores/{{dataset}}_fold{{fold}}_{pl.VARIANT}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    shell:
        SHELL["ablation_student_scores"]


rule ablation_evaluate:
    input:
        unpack(
            dvc_inputs(
                "ablation_evaluate",
                synth=synth_input,
                index=INDEX,
                teacher=TEACHER_SCORES,
                student=ABL_SCORES,
            )
        ),
    output:
        table=ABL_EVAL,
    params:
        root=root_of,
        config=section("ablation_evaluate"),
    log:
        f"logs/ablation/evaluate/{{dataset}}_fold{{fold}}_{pl.VARIANT}.log",
    conda:
        ENV
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=30,
    shell:
        SHELL["ablation_evaluate"]


rule ablation_table:
    input:
        unpack(
            dvc_inputs(
                "ablation_table",
                students=pl.ablation_evals(config),
                baselines=pl.baseline_csvs(config),
            )
        ),
    output:
        csv=report(ABLATION_CSV, caption="../report/ablation.rst", category="Tables"),
        md=report(ABLATION_MD, caption="../report/ablation.rst", category="Tables"),
    params:
        K=pl.ablation_ks(config),
        config=section("ablation_table"),
    log:
        "logs/tables/ablation.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["ablation_table"]
