# Evaluation: per-clip test scores once per (dataset, fold, model), then the K / Ks grid.


rule teacher_scores:
    input:
        unpack(
            dvc_inputs(
                "teacher_scores",
                index=INDEX,
                cache=CACHE,
                model=TEACHER,
            )
        ),
    output:
        scores=TEACHER_SCORES,
    params:
        config=section("teacher_scores"),
    log:
        "logs/scores/{dataset}_fold{fold}_teacher_{teacher}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    shell:
        SHELL["teacher_scores"]


rule student_scores:
    input:
        unpack(
            dvc_inputs(
                "student_scores",
                index=INDEX,
                cache=CACHE,
                model=STUDENT,
            )
        ),
    output:
        scores=STUDENT_SCORES,
    params:
        config=section("student_scores"),
    log:
        "logs/scores/{dataset}_fold{fold}_student_{teacher}_{student}_{method}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    shell:
        SHELL["student_scores"]


rule evaluate_baselines:
    input:
        unpack(
            dvc_inputs(
                "evaluate_baselines",
                synth=synth_input,
                index=INDEX,
                teacher=TEACHER_SCORES,
            )
        ),
    output:
        table=EVAL_BASELINES,
    params:
        root=root_of,
        config=section("evaluate_baselines"),
    log:
        "logs/evaluate/{dataset}_fold{fold}_{teacher}_baselines.log",
    conda:
        ENV
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=30,
    shell:
        SHELL["evaluate_baselines"]


rule evaluate_students:
    input:
        unpack(
            dvc_inputs(
                "evaluate_students",
                synth=synth_input,
                index=INDEX,
                teacher=TEACHER_SCORES,
                students=lambda w: [
                    STUDENT_SCORES.format(**dict(w.items()), method=m) for m in config["methods"]
                ],
            )
        ),
    output:
        table=EVAL_STUDENTS,
    params:
        root=root_of,
        students=lambda w: pl.student_scores_arg(w.dataset, w.fold, w.teacher, w.student, config["methods"]),
        config=section("evaluate_students"),
    log:
        "logs/evaluate/{dataset}_fold{fold}_{teacher}_{student}.log",
    conda:
        ENV
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=30,
    shell:
        SHELL["evaluate_students"]
