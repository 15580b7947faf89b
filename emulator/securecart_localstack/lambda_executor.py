"""A LocalStack Lambda runtime executor that runs Python and Node.js functions as local processes instead of Docker containers.

Each execution environment is one worker process started in the unzipped code folder with the
environment LocalStack prepares: `lambda_worker.py` on LocalStack's own interpreter for Python
runtimes (so boto3 is available, as in the AWS runtime), `lambda_worker.js` on the `node` found on
PATH for Node.js runtimes (no AWS SDK is provided; bundle it with the function). Invocations go over the worker's stdin/stdout; the executor enforces the
function timeout and replaces a worker that timed out or died, as AWS resets the sandbox.
"""

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation import execution_environment as _execution_environment
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

LOG = logging.getLogger(__name__)

EXECUTOR_NAME = "securecart-local"
# Time allowed for interpreter start plus the handler module's import (AWS allows 10 s of init).
INIT_TIMEOUT_SECONDS = 30
# Variables of LocalStack's own process that a function must not inherit (they would reconfigure
# boto3 or Python inside the function).
_HOST_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "HOME", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")


_NODE_WORKER = Path(__file__).with_name("lambda_worker.js")

_default_log_group_name = _execution_environment.ExecutionEnvironment.get_log_group_name


def _configured_log_group_name(self) -> str:
    """AWS writes a function's logs to the log group of its LoggingConfig; LocalStack 4.14 always
    writes to /aws/lambda/<name>, which leaves behind a log group nobody declared or destroys."""
    logging_config = getattr(self.function_version.config, "logging_config", None) or {}
    return logging_config.get("LogGroup") or _default_log_group_name(self)


# Loaded before any invocation: LocalStack imports the executor to build the first environment.
_execution_environment.ExecutionEnvironment.get_log_group_name = _configured_log_group_name


def _worker_command(runtime: str) -> list[str] | str:
    """The command that runs a worker for this runtime, or why there is none."""
    if runtime.startswith("python"):
        return [sys.executable, "-u", "-m", "securecart_localstack.lambda_worker"]
    if runtime.startswith("nodejs"):
        node = shutil.which("node")
        if not node:
            return f"runtime {runtime} needs Node.js: no `node` on the emulator's PATH"
        return [node, str(_NODE_WORKER)]
    return f"runtime {runtime} is not supported by the local executor (Python and Node.js runtimes only)"


def _supported(function_version: FunctionVersion) -> str | None:
    """Returns why the function cannot run here, or None."""
    cfg = function_version.config
    if not cfg.runtime:
        return "container image functions are not supported by the local executor"
    command = _worker_command(str(cfg.runtime))
    return command if isinstance(command, str) else None


class _Worker:
    """One running lambda_worker process and the thread that reads its answers."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path, log_path: Path):
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            cwd=str(cwd),
        )
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, name=f"lambda-worker-{self.process.pid}", daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            try:
                self.answers.put(json.loads(line))
            except ValueError:
                LOG.warning("unexpected output from lambda worker %s: %r", self.process.pid, line[:200])
        self.answers.put(None)  # end of stream: the worker exited

    def wait_answer(self, timeout: float):
        """The next answer, None if the worker exited, or raises queue.Empty on timeout."""
        return self.answers.get(timeout=timeout)

    def send(self, obj) -> bool:
        try:
            self.process.stdin.write((json.dumps(obj) + "\n").encode())
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def exit_status(self) -> str:
        code = self.process.poll()
        if code is None:
            return "still running"
        return f"signal {-code}" if code < 0 else f"exit status {code}"

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.log.close()


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.env: dict[str, str] = {}
        self.worker: _Worker | None = None
        self.lock = threading.RLock()
        self.stopped = False
        self.log_path = Path(config.dirs.tmp) / "lambda-executors" / f"{id}.log"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        code_dir = self._code_dir()
        env = {k: os.environ[k] for k in _HOST_ENV_KEEP if k in os.environ}
        env.update({k: str(v) for k, v in env_vars.items()})
        # The function's own files are where AWS's /var/task would be.
        env["LAMBDA_TASK_ROOT"] = str(code_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{self.function_version.config.runtime}"
        self.env = env
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self._spawn()

    def _code_dir(self) -> Path:
        code = self.function_version.config.code
        if code is None:
            raise LambdaRuntimeException("function has no code")
        return Path(code.get_unzipped_code_location())

    def _spawn(self) -> None:
        """Starts a worker and waits for it to finish init; raises if it cannot."""
        command = _worker_command(str(self.function_version.config.runtime))
        if isinstance(command, str):
            raise LambdaRuntimeException(command)
        worker = _Worker(command, self.env, self._code_dir(), self.log_path)
        try:
            answer = worker.wait_answer(INIT_TIMEOUT_SECONDS)
        except queue.Empty:
            worker.kill()
            raise LambdaRuntimeException(f"Lambda worker did not initialise within {INIT_TIMEOUT_SECONDS} s; see {self.log_path}")
        if not answer or answer.get("type") != "ready":
            status = worker.exit_status()
            worker.kill()
            raise LambdaRuntimeException(f"Lambda worker failed to start ({status}): {self.get_logs()[-2000:]}")
        self.worker = worker

    def stop(self) -> None:
        # Without the lock: a running invocation holds it, and killing its worker is what ends it
        # (the invocation then reports the exit).
        self.stopped = True
        worker = self.worker
        if worker:
            worker.kill()

    # -- addresses (the worker talks to no endpoint, but LocalStack puts these in its environment) --

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    # -- invocation --------------------------------------------------------------------------

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout = float(self.function_version.config.timeout or 3)
        with self.lock:
            if self.stopped:
                return self._failure(request_id, "Runtime.ExitError", "execution environment was stopped")
            if self.worker is None:
                # The previous worker timed out or died; AWS also starts a fresh sandbox (cold start).
                try:
                    self._spawn()
                except LambdaRuntimeException as e:
                    return self._failure(request_id, "Runtime.ExitError", str(e))
            worker = self.worker
            started = time.time()
            request = {
                "request_id": request_id,
                "payload": payload.get("payload") or "",
                "invoked_function_arn": payload.get("invoked-function-arn"),
                "deadline_ms": int((started + timeout) * 1000),
            }
            if not worker.send(request):
                return self._replace_after(request_id, "Runtime.ExitError", f"Runtime exited with error: {worker.exit_status()}")
            try:
                # A little slack covers the worker's own bookkeeping around the handler call.
                answer = worker.wait_answer(timeout + 0.5)
            except queue.Empty:
                return self._replace_after(request_id, "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
            if answer is None:
                return self._replace_after(request_id, "Runtime.ExitError", f"Runtime exited with error: {worker.exit_status()}")
            return InvocationResult(
                request_id=request_id,
                payload=answer["payload"].encode(),
                is_error=not answer["ok"],
                logs=answer["logs"],
            )

    def _replace_after(self, request_id: str, error_type: str, message: str) -> InvocationResult:
        if self.worker:
            self.worker.kill()
        self.worker = None
        return self._failure(request_id, error_type, message)

    def _failure(self, request_id: str, error_type: str, message: str) -> InvocationResult:
        full = f"RequestId: {request_id} Error: {message}"
        body = {"errorType": error_type, "errorMessage": full}
        logs = f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n{full}\nEND RequestId: {request_id}\n"
        return InvocationResult(request_id=request_id, payload=json.dumps(body).encode(), is_error=True, logs=logs)

    def get_logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- versions ----------------------------------------------------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        reason = _supported(function_version)
        if reason:
            raise LambdaRuntimeException(reason)
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True


class LocalProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = EXECUTOR_NAME

    def load(self, *args, **kwargs):
        return LocalProcessRuntimeExecutor
