# Tables: long CSVs are the source of truth; the paper-shaped ones are pivots of them. The
# metrics rule writes table3's companions for DVC (metrics.json, plots/) and the report.


rule table3:
    input:
        unpack(
            dvc_inputs(
                "table3",
                evals=pl.eval_csvs(config),
            )
        ),
    output:
        csv=report(TABLE3_CSV, caption="../report/table3_csv.rst", category="Tables"),
        md=report(TABLE3_MD, caption="../report/table3_md.rst", category="Tables"),
        paper=report(pl.TABLE3_PAPER_CSV, caption="../report/table3_md.rst", category="Tables"),
    params:
        config=section("table3"),
    log:
        "logs/tables/table3.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["table3"]


rule metrics:
    input:
        unpack(
            dvc_inputs(
                "metrics",
                table3=TABLE3_CSV,
            )
        ),
    output:
        metrics=report(METRICS_JSON, caption="../report/metrics.rst", category="Metrics"),
        plots=report(PLOT_CSV, caption="../report/accuracy_vs_k_csv.rst", category="Figures"),
        figure=report(PLOT_PNG, caption="../report/accuracy_vs_k.rst", category="Figures"),
    log:
        "logs/tables/metrics.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        SHELL["metrics"]
