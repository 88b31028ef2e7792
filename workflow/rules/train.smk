# Training: teacher, Eq. 1 pseudo-labels, student distillation per (teacher, student, method).
# Training jobs checkpoint every epoch beside their output (<out>.state.pt): a killed job
# re-run by Snakemake resumes from the last completed epoch.


rule train_teacher:
    input:
        unpack(
            dvc_inputs(
                "train_teacher",
                index=INDEX,
                cache=CACHE,
                checkpoint=lambda w: pl.teacher_checkpoint(config, w.teacher),
            )
        ),
    output:
        model=TEACHER,
    params:
        config=section("train_teacher"),
    log:
        "logs/train_teacher/{dataset}_fold{fold}_{teacher}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=24 * 60,
    shell:
        SHELL["train_teacher"]


rule pseudo_labels:
    input:
        unpack(
            dvc_inputs(
                "pseudo_labels",
                index=INDEX,
                cache=CACHE,
                teacher=TEACHER,
            )
        ),
    output:
        labels=LABELS,
    params:
        config=section("pseudo_labels"),
    log:
        "logs/pseudo_labels/{dataset}_fold{fold}_{teacher}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    shell:
        SHELL["pseudo_labels"]


rule train_student:
    input:
        unpack(
            dvc_inputs(
                "train_student",
                index=INDEX,
                cache=CACHE,
                labels=LABELS,
            )
        ),
    output:
        model=STUDENT,
    params:
        config=section("train_student"),
    log:
        "logs/train_student/{dataset}_fold{fold}_{teacher}_{student}_{method}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=24 * 60,
    shell:
        SHELL["train_student"]
