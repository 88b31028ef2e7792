#!/usr/bin/env bash
# A single-node SLURM on this machine (Debian/Ubuntu, root): munge, slurmctld and slurmd on
# localhost, one partition "debug" with every CPU, no accounting (the executor plugin then
# queries job states with squeue; MinJobAge keeps finished jobs visible long enough).
# Used by tests/orchestration/test_slurm.py (CONDI_TEST_SLURM=1).
set -euo pipefail
if ! command -v slurmctld >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null
fi
host=$(hostname -s)
node=$(slurmd -C | head -1)                       # NodeName=<host> CPUs=... RealMemory=...
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=condi
SlurmctldHost=${host}
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
${node%% UpTime*} RealMemory=$((mem * 9 / 10)) State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
sed -i "s/ RealMemory=${mem} / /" /etc/slurm/slurm.conf
chown munge:munge /run/munge
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && exit 0; sleep 1; done
echo "SLURM did not come up" >&2
exit 1
