# The MLflow parent run of this invocation. Each invocation that has work to do
# owns one (Snakemake calls onstart neither for dry runs, --report, nor when
# nothing is to be done). `jointseg track start` prints its id; it goes into this
# process's environment, which the jobs of this invocation alone inherit (local
# jobs copy os.environ; the Slurm executor submits with --export=ALL). No file
# holds it, so no rule depends on it and another invocation never sees it. The
# Snakemake process is the run's owner: if it dies (kill -9), the next start marks
# the run KILLED and moves its children under the new parent. MLflow is a view of
# the results: a tracking failure of these hooks is one warning line, never a
# failed study (a job whose tracking store stays unreachable fails, see
# jointseg.tracking.store). JOINTSEG_MLFLOW=0 switches it off.
import subprocess

MLFLOW_PARENT_ENV = "JOINTSEG_MLFLOW_PARENT"
MLFLOW_LOG = "logs/mlflow_parent.log"
MLFLOW_OFF = ("0", "off", "false", "no")


def _track(*args: str) -> str | None:
    """Run `python -m jointseg track ARGS`: its stdout, or None (off; failed: a warning)."""
    if not workflow.is_main_process:  # hooks also fire inside cluster jobs
        return None
    if os.environ.get("JOINTSEG_MLFLOW", "1").strip().lower() in MLFLOW_OFF:
        return None
    cmd = [sys.executable, "-m", "jointseg", "track", *args]
    cmd += ["--config", EFFECTIVE_CONFIG] + (
        ["--study-dir", RESULTS] if args[0] == "start" else []
    )
    try:
        Path(MLFLOW_LOG).parent.mkdir(parents=True, exist_ok=True)
        with open(MLFLOW_LOG, "a") as log:
            done = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, timeout=900
            )
        failure = f"exit {done.returncode}" if done.returncode else None
    except (OSError, subprocess.SubprocessError) as exc:
        done, failure = None, f"{type(exc).__name__}: {exc}"
    if failure:
        print(
            f"jointseg workflow: warning: MLflow tracking '{args[0]}' failed "
            f"({failure}); the study goes on, details in {MLFLOW_LOG}",
            file=sys.stderr,
        )
        return None
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else None


onstart:
    # never a run id inherited from elsewhere
    os.environ.pop(MLFLOW_PARENT_ENV, None)
    _parent = _track("start", "--owner-pid", str(os.getpid()))
    if _parent:
        os.environ[MLFLOW_PARENT_ENV] = _parent


onsuccess:
    # The summary's seed means become metrics of the parent; the folder (tables,
    # figures, provenance) its artifacts. A partial target may have no summary.
    if os.environ.get(MLFLOW_PARENT_ENV):
        _track("finish", "--status", "FINISHED", "--summary", SUMMARY)


onerror:
    if os.environ.get(MLFLOW_PARENT_ENV):
        _track("finish", "--status", "FAILED")
