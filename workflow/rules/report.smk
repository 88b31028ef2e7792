# Reports beyond Table III: Table I (datasets), Table II (models), timing (Tables IV and V),
# ambiguity detection and the figures (SPEC sections 5-6).


rule table1:
    input:
        unpack(
            dvc_inputs(
                "table1",
                indexes=[path for _, path in pl.table1_indexes(config)],
            )
        ),
    output:
        csv=report(TABLE1_CSV, caption="../report/table1.rst", category="Tables"),
        md=report(TABLE1_MD, caption="../report/table1.rst", category="Tables"),
    params:
        indexes=pl.index_args(pl.table1_indexes(config)),
    log:
        "logs/tables/table1.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["table1"]


rule table2:
    input:
        unpack(
            dvc_inputs(
                "table2",
                indexes=[path for _, path in pl.table2_indexes(config)],
            )
        ),
    output:
        csv=report(TABLE2_CSV, caption="../report/table2.rst", category="Tables"),
        md=report(TABLE2_MD, caption="../report/table2.rst", category="Tables"),
    params:
        indexes=pl.index_args(pl.table2_indexes(config)),
        config=section("table2"),
    log:
        "logs/tables/table2.log",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        SHELL["table2"]


rule timing:
    input:
        unpack(
            dvc_inputs(
                "timing",
                index=INDEX,
                cache=CACHE,
                teacher=TEACHER,
                teacher_scores=TEACHER_SCORES,
                students=lambda w: pl.timing_students(config, dict(w.items()))[0],
                student_scores=lambda w: pl.timing_students(config, dict(w.items()))[1],
            )
        ),
    output:
        timing=TIMING,
    params:
        students=lambda w: pl.timing_students_arg(config, dict(w.items())),
        options=pl.timing_options(config),
        config=section("timing"),
    log:
        "logs/timing/{dataset}_fold{fold}_{teacher}_{student}.log",
    conda:
        ENV
    threads: all_cores
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    shell:
        SHELL["timing"]


rule table4:
    input:
        unpack(
            dvc_inputs(
                "table4",
                timing=pl.timing_csvs(config),
            )
        ),
    output:
        csv=report(TABLE4_CSV, caption="../report/table4.rst", category="Tables"),
        md=report(TABLE4_MD, caption="../report/table4.rst", category="Tables"),
    log:
        "logs/tables/table4.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["table4"]


rule table5:
    input:
        unpack(
            dvc_inputs(
                "table5",
                timing=pl.timing_csvs(config),
            )
        ),
    output:
        csv=report(TABLE5_CSV, caption="../report/table5.rst", category="Tables"),
        md=report(TABLE5_MD, caption="../report/table5.rst", category="Tables"),
    log:
        "logs/tables/table5.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["table5"]


rule ambiguity:
    input:
        unpack(
            dvc_inputs(
                "ambiguity",
                synth=synth_input,
                index=INDEX,
                teacher=TEACHER_SCORES,
                students=lambda w: [
                    STUDENT_SCORES.format(**dict(w.items()), method=m) for m in config["methods"]
                ],
            )
        ),
    output:
        table=AMBIGUITY,
    params:
        root=root_of,
        students=lambda w: pl.student_scores_arg(w.dataset, w.fold, w.teacher, w.student, config["methods"]),
        config=section("ambiguity"),
    log:
        "logs/ambiguity/{dataset}_fold{fold}_{teacher}_{student}.log",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        SHELL["ambiguity"]


rule ambiguity_table:
    input:
        unpack(
            dvc_inputs(
                "ambiguity_table",
                tables=pl.ambiguity_csvs(config),
            )
        ),
    output:
        csv=report(AMBIGUITY_CSV, caption="../report/ambiguity.rst", category="Tables"),
        md=report(AMBIGUITY_MD, caption="../report/ambiguity.rst", category="Tables"),
    log:
        "logs/tables/ambiguity.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["ambiguity_table"]


rule figures:
    input:
        unpack(
            dvc_inputs(
                "figures",
                table3=TABLE3_CSV,
                timing=pl.timing_csvs(config),
            )
        ),
    output:
        png=[
            report(p, caption="../report/figures.rst", category="Figures")
            for p in pl.figure_outputs(config)
            if p.endswith(".png")
        ],
        svg=[p for p in pl.figure_outputs(config) if p.endswith(".svg")],
    params:
        out_dir=lambda w, output: os.path.dirname(output.png[0]),  # FIGURES
    log:
        "logs/figures/figures.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["figures"]


rule timeline:
    input:
        unpack(
            dvc_inputs(
                "timeline",
                synth=synth_input,
                index=INDEX,
                teacher=TEACHER_SCORES,
                student=lambda w: STUDENT_SCORES.format(**dict(w.items()), method="condi_sr"),
            )
        ),
    output:
        png=report(
            f"{FIGURES}/{TIMELINE}.png", caption="../report/ztilde_timeline.rst", category="Figures"
        ),
        svg=f"{FIGURES}/{TIMELINE}.svg",
    params:
        out_dir=lambda w, output: os.path.dirname(output.png),  # FIGURES
        root=root_of,
        stem=lambda w: TIMELINE.format(**dict(w.items())),
    log:
        "logs/figures/{dataset}_fold{fold}_{teacher}_{student}_timeline.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["timeline"]
