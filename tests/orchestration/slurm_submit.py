"""The sbatch command line of every job of a workflow, as snakemake-executor-plugin-slurm would
submit it, without a SLURM cluster (used by tests/orchestration/test_slurm_profile.py).

    python tests/orchestration/slurm_submit.py OUT.json SNAKEMAKE_ARGS...

run in the workflow's directory. Snakemake itself reads the command line and the profiles
(``--workflow-profile``) and builds the DAG as a real submission would (the slurm executor
chosen, so no ``--cores`` limits the jobs' threads); only the execution is swapped for a dry
run, which hands every job to a recorder. For each job the recorder then calls the installed
plugin's own code, as its ``Executor.run_job`` does: the partition (``get_partition_arg``: the
profile's partition-config, else the default-resources' ``slurm_partition``), the account
(``get_account_arg``), ``get_submit_command`` and ``set_gres_string``. Local rules are
recorded without a command (Snakemake runs them on the submitting node), and so is every job
when the executor is not slurm (the default profile: only threads and resources). ``sacct`` must be on
PATH when no account is set (the plugin guesses it from there).

OUT.json: a list of ``{"rule", "wildcards", "local", "threads", "resources", "sbatch"}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: str, argv: list[str]) -> int:
    import snakemake.api
    from snakemake.cli import args_to_api, parse_args
    from snakemake.executors import dryrun
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    jobs = []
    workflows = []
    run_job = dryrun.Executor.run_job

    def record(self, job):
        jobs.append(job)
        workflows.append(self.workflow)
        return run_job(self, job)

    execute = snakemake.api.DAGApi.execute_workflow

    def as_dry_run(self, *args, **kwargs):
        kwargs["pseudo_executor"] = "dryrun"
        return execute(self, *args, **kwargs)

    dryrun.Executor.run_job = record
    snakemake.api.DAGApi.execute_workflow = as_dry_run
    parser, args = parse_args(argv)
    if not args_to_api(args, parser):
        return 1

    import snakemake_executor_plugin_slurm as plugin
    from snakemake.logging import logger
    from snakemake_executor_plugin_slurm.partitions import read_partition_file
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import get_job_wildcards, set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    settings = ExecutorPluginRegistry().get_plugin("slurm").get_settings(args)
    executor = plugin.Executor.__new__(plugin.Executor)  # the submission helpers, no threads
    executor.logger = logger
    executor._fallback_account_arg = None
    executor._fallback_partition = None
    executor._partitions = (
        read_partition_file(settings.partition_config) if settings.partition_config else None
    )
    rows = []
    for job, workflow in zip(jobs, workflows, strict=True):
        if job.is_group() or job.rule.norun:
            continue
        local = job.rule.name in workflow._localrules
        row = {
            "rule": job.rule.name,
            "wildcards": dict(job.wildcards.items()),
            "local": local,
            "threads": job.threads,
            "resources": {
                k: v for k, v in job.resources.items() if isinstance(v, int | float | str)
            },
            "sbatch": None,
        }
        if not local and args.executor == "slurm":
            validate_slurm_extra(job)
            wildcards = get_job_wildcards(job)
            params = {
                "run_uuid": "RUN",
                "slurm_logfile": Path(".snakemake/slurm_logs") / f"rule_{job.name}" / "%j.log",
                "comment_str": f"rule_{job.name}_wildcards_{wildcards}",
                "account": next(executor.get_account_arg(job)),
                "partition": executor.get_partition_arg(job),
                "workdir": workflow.workdir_init,
            }
            call = get_submit_command(job, params, settings=settings)
            row["sbatch"] = call + set_gres_string(job)
        rows.append(row)
    Path(out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
