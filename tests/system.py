"""Real system components for the multi-process tests: Debian packages installed on demand, free ports.

The tests that launch with ``mpirun`` or Slurm install what they need themselves (``apt-get``, as root), on this
machine only, and fail with the command to run when they cannot.
"""
import fcntl
import os
import shutil
import socket
import subprocess

import pytest

LOCK = "/tmp/biobert-tests-apt.lock"


def ensure_debian_packages(commands, packages):
    """Install ``packages`` with apt-get unless every one of ``commands`` is already on PATH."""
    if all(shutil.which(c) for c in commands):
        return
    hint = "apt-get install -y " + " ".join(packages)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"{', '.join(commands)} not found and this user cannot install them: run `{hint}` as root")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(shutil.which(c) for c in commands):
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + list(packages)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env, timeout=900)
            proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode:
            pytest.fail(f"`{hint}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    missing = [c for c in commands if not shutil.which(c)]
    if missing:
        pytest.fail(f"installed {' '.join(packages)} but {', '.join(missing)} still not on PATH")


def free_port_base(count):
    """A port P such that P .. P+count-1 were all free on loopback a moment ago."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            held = []
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no run of free ports found")


SLURM_CONF = """\
ClusterName=biobert-tests
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=tests Nodes={host} Default=YES MaxTime=INFINITE OverSubscribe=FORCE State=UP
"""


class SlurmCluster:
    """A one-node Slurm cluster on loopback (munged, slurmctld, slurmd) with its own config, ports and folders.

    ``env`` holds SLURM_CONF for the client commands (srun, sbatch, sinfo); ``stop()`` ends the daemons.
    """

    def __init__(self, root):
        ensure_debian_packages(["slurmctld", "slurmd", "srun", "sbatch", "munged", "mungekey"],
                               ["slurm-wlm", "munge"])
        self.root = root
        self.procs = []
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.chmod(root, 0o755)
        host = socket.gethostname()
        base = free_port_base(2)
        conf = os.path.join(root, "slurm.conf")
        with open(conf, "w") as handle:
            handle.write(SLURM_CONF.format(host=host, root=root, ctld_port=base, slurmd_port=base + 1,
                                           cpus=os.cpu_count()))
        self.env = dict(os.environ, SLURM_CONF=conf)
        key = os.path.join(root, "munge.key")
        self._check(["mungekey", "--create", f"--keyfile={key}"])
        os.chmod(key, 0o600)
        self._check(["munged", "--force", f"--key-file={key}", f"--socket={root}/munge.socket",
                     f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
                     f"--seed-file={root}/munged.seed"])
        self.procs.append(subprocess.Popen(["slurmctld", "-D", "-c", "-i", "-f", conf], env=self.env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen(["slurmd", "-D", "-f", conf], env=self.env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._wait_idle()

    def _check(self, cmd):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode:
            self.stop()
            pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def _wait_idle(self, timeout=90):
        import time

        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            state = proc.stdout.strip()
            if proc.returncode == 0 and state == "idle":
                return
            time.sleep(1)
        logs = self.logs()
        self.stop()
        pytest.fail(f"the Slurm node did not become idle in {timeout}s (state {state!r}):\n{logs}")

    def logs(self):
        text = ""
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = os.path.join(self.root, name)
            if os.path.exists(path):
                text += f"--- {name}\n" + open(path, errors="replace").read()[-3000:]
        return text

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        pid_file = os.path.join(self.root, "munged.pid")
        if os.path.exists(pid_file):
            try:
                os.kill(int(open(pid_file).read().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass
