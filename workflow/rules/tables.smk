# Tables: long CSVs are the source of truth; the paper-shaped ones are pivots of them.


rule table3:
    input:
        pl.eval_csvs(config),
    output:
        csv=TABLE3_CSV,
        md=TABLE3_MD,
    params:
        config=section("tables"),
    log:
        "logs/tables/table3.log",
    conda:
        ENV
    shell:
        SHELL["table3"]
