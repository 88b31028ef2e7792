# One rule per stage of the table in condi.pipeline (paths, wildcards, the params each stage
# reads, its condi command); `condi pipeline dvc` writes dvc.yaml from the same table.


for stage in pl.STAGES.values():

    rule:
        name:
            stage.name
        input:
            unpack(inputs_of(stage)),
        output:
            **outputs_of(stage),
        params:
            **params_of(stage),
        log:
            pl.log_pattern(stage),
        benchmark:
            pl.log_pattern(stage, pl.BENCHMARKS, ".tsv")
        conda:
            env_of(stage)
        threads: threads_of(stage)
        resources:
            **gpu_of(stage),
            mem_mb=stage.mem_mb,
            runtime=stage.runtime,
        shell:
            pl.RULE_SHELL

# Tables and figures run on the submitting node, never as cluster jobs.
workflow.localrules(*(stage.name for stage in pl.STAGES.values() if stage.local))
