"""Load and fault test of `keras-transformer serve` on this machine, over
loopback, with standard-library clients (asyncio streams, keep-alive HTTP/1.1):

    python -m benchmarks.serving [--model RUN] [--sentences 200] [--batch-size 8]
        [--max-wait-ms MS] [--overload-queue N] [--backend jax] [--xla-single-thread]
        [--quick] [--save]

The server runs as a subprocess of this one, on a free port of 127.0.0.1, and
is always ended by it. The requests carry the first `--sentences` sources of
the run's test split (`RUN/../scored_splits/test.tsv` unless `--sources`).
In turn:

1. throughput and latency, one sentence per request, of a server that does
   not batch (`--max-batch-size 1`) and of one that does
   (`--max-batch-size BATCH_SIZE`), at 1, 8, 32 and 128 closed-loop clients,
   then one open-loop run at 70% of the batched capacity (requests sent on
   schedule whatever the answers, latency from the scheduled time);
2. overload: open loop at twice the batched capacity, with /readyz polled
   from a thread every half second and the server's memory before and after;
   with `--overload-queue N`, once more against a batched server whose queue
   holds N sentences (`--max-queue N`), a queue sized for latency;
3. correctness: every 200 answer of every phase against the offline
   `Translator.translate(sentences, beams=1)` of this process;
4. soak: many requests of the shortest quarter of the sentences (bounded
   in count and time), the server's memory and open file descriptors before
   and after;
5. `kill -9` of the server under load and its restart: seconds until
   /readyz answers 200 again, and what the clients saw meanwhile;
6. malformed requests of each kind, each answer's status, then a good one;
   last, SIGTERM under load: the answers in flight and the exit status.

Prints one JSON line per phase and the tables of docs/serving.md; `--save`
writes docs/serving_results.json. `--quick` runs every phase briefly.
"""

import argparse
import asyncio
import dataclasses
import http.client
import itertools
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
HOST = "127.0.0.1"
DEFAULT_MODEL = os.path.join(ROOT, "runs", "real_text", "fr", "ours")
SERVER_TIMEOUT_S = 30.0  # the server's --timeout-s (its default)
CLIENT_TIMEOUT_S = SERVER_TIMEOUT_S + 15  # no answer by then: the request is lost
# uvicorn closes a keep-alive connection idle for 5 s; a client that sends on
# it as it closes gets a reset, so connections idle for longer are reopened.
REUSE_IDLE_S = 3.0
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long and how many of each phase; every loop stops at the first
    of its bounds."""

    levels: tuple = (1, 8, 32, 128)
    level_seconds: float = 10.0
    level_requests: int = 5000
    open_seconds: float = 20.0
    overload_seconds: float = 60.0
    soak_requests: int = 20000
    soak_seconds: float = 180.0
    soak_clients: int = 64
    kill_after_s: float = 3.0
    after_restart_s: float = 3.0


FULL = Plan()
QUICK = Plan(
    levels=(1, 8, 32),
    level_seconds=3.0,
    level_requests=500,
    open_seconds=4.0,
    overload_seconds=8.0,
    soak_requests=500,
    soak_seconds=15.0,
    kill_after_s=1.5,
    after_restart_s=1.0,
)


# ----------------------------------------------------------------- HTTP client


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, opened on first use
    and again after it was closed or stayed idle `REUSE_IDLE_S` seconds."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None
        self.last_used = 0.0

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict, bytes]:
        if self.writer is not None and time.monotonic() - self.last_used > REUSE_IDLE_S:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            self.writer.write(head.encode("ascii") + body)
            await self.writer.drain()
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionResetError("the server closed the connection")
            status = int(status_line.split()[1])
            headers = {}
            while True:
                line = await self.reader.readline()
                if not line:
                    raise ConnectionResetError("the server closed the connection")
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            self.close()
            raise
        self.last_used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


@dataclasses.dataclass
class Outcome:
    """One translation request: its status (None: no answer), its latency
    in seconds, the error that ended it, and how many sentences it held."""

    status: int | None
    seconds: float
    error: str | None
    sentences: int
    retry_after: str | None = None


class Checker:
    """Compares each accepted translation with the offline reference."""

    def __init__(self, reference: dict[str, str]):
        self.reference = reference
        self.responses = 0
        self.sentences = 0
        self.mismatches = 0
        self.malformed = 0
        self.examples = []

    def check(self, phase: str, sentences: list[str], data: bytes) -> None:
        self.responses += 1
        try:
            translations = json.loads(data)["translations"]
            if len(translations) != len(sentences):
                raise ValueError(f"{len(translations)} translations of {len(sentences)}")
        except (ValueError, KeyError, TypeError) as error:
            self.malformed += 1
            self.examples.append({"phase": phase, "malformed": str(error)})
            return
        for sentence, translation in zip(sentences, translations, strict=True):
            self.sentences += 1
            if translation != self.reference[sentence]:
                self.mismatches += 1
                if len(self.examples) < 20:
                    self.examples.append(
                        {
                            "phase": phase,
                            "sentence": sentence,
                            "served": translation,
                            "offline": self.reference[sentence],
                        }
                    )

    def summary(self) -> dict:
        return {
            "responses_checked": self.responses,
            "sentences_checked": self.sentences,
            "mismatches": self.mismatches,
            "malformed": self.malformed,
            "examples": self.examples,
        }


async def translate_once(connection, sentences, checker, phase, scheduled=None) -> Outcome:
    """One POST /v1/translate; latency from `scheduled` (a `perf_counter`
    time) when given, else from now."""
    body = json.dumps({"sentences": sentences, "beams": 1}).encode()
    started = time.perf_counter() if scheduled is None else scheduled
    try:
        status, headers, data = await asyncio.wait_for(
            connection.request("POST", "/v1/translate", body), CLIENT_TIMEOUT_S
        )
    except asyncio.TimeoutError:
        return Outcome(None, time.perf_counter() - started, None, len(sentences))
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
        return Outcome(None, time.perf_counter() - started, type(error).__name__, len(sentences))
    seconds = time.perf_counter() - started
    if status == 200:
        checker.check(phase, sentences, data)
    return Outcome(status, seconds, None, len(sentences), headers.get("retry-after"))


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """A blocking GET on a connection of its own."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# ------------------------------------------------------------ load generators


async def closed_loop(port, clients, seconds, max_requests, batches, checker, phase, stop=None):
    """`clients` clients, each sending its next request when the last one is
    answered, until `seconds` pass, `max_requests` are sent or `stop` is set.
    A client that got no answer, or an answer other than 200, waits 0.1 s
    before it sends again."""
    outcomes = []
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def client():
        connection = Connection(port)
        try:
            while time.perf_counter() < deadline and not (stop and stop.is_set()):
                index = next(counter)
                if index >= max_requests:
                    return
                outcome = await translate_once(
                    connection, batches[index % len(batches)], checker, phase
                )
                outcomes.append(outcome)
                if outcome.status != 200:
                    await asyncio.sleep(0.1)
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return outcomes, time.perf_counter() - started


async def open_loop(port, rate, seconds, batches, checker, phase, max_connections=4000):
    """Requests sent at `rate` per second on a fixed schedule for `seconds`,
    whatever the answers, each on an idle connection or a new one; the
    latency counts from the scheduled time, so a late send counts too."""
    outcomes, idle, tasks = [], [], []
    slots = asyncio.Semaphore(max_connections)
    connections = []
    most_open = 0

    async def one(index, scheduled):
        nonlocal most_open
        async with slots:
            if idle:
                connection = idle.pop()
            else:
                connection = Connection(port)
                connections.append(connection)
                most_open = max(most_open, len(connections))
            outcomes.append(
                await translate_once(
                    connection, batches[index % len(batches)], checker, phase, scheduled
                )
            )
            idle.append(connection)

    count = int(rate * seconds)
    start = time.perf_counter() + 0.05
    latest_send = 0.0
    for index in range(count):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        latest_send = max(latest_send, time.perf_counter() - scheduled)
        tasks.append(asyncio.create_task(one(index, scheduled)))
    done, pending = await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT_S + 5)
    for task in pending:
        task.cancel()
    for connection in connections:
        connection.close()
    elapsed = time.perf_counter() - start
    extra = {"rate": rate, "unfinished": len(pending), "connections": most_open}
    extra["latest_send_ms"] = latest_send * 1000
    return outcomes, elapsed, extra


# -------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    """`keras-transformer serve` in a subprocess on a free port; `stop`
    ends it (SIGTERM, then SIGKILL), and so does leaving a `with` block."""

    def __init__(self, model, options: dict, backend: str, env: dict, log_directory: str):
        self.options = options
        self.port = free_port()
        self.command = [sys.executable, "-m", "keras_transformer", "serve", "--model", model]
        self.command += ["--backend", backend, "--host", HOST, "--port", str(self.port)]
        for name, value in options.items():
            self.command += ["--" + name.replace("_", "-"), str(value)]
        self.env = {**os.environ, "KERAS_BACKEND": backend, **env}
        self.log_path = os.path.join(log_directory, f"server-{self.port}.log")
        self.process = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Seconds from now until /readyz answers 200."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.log()}")
            try:
                if http_get(self.port, "/readyz", timeout=2)[0] == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server was not ready within {timeout:.0f} s:\n{self.log()}")

    def log(self, characters: int = 3000) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()[-characters:]

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as file:
            kib = int(re.search(r"VmRSS:\s+(\d+)", file.read()).group(1))
        return kib / 1024

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/task"))

    def children(self) -> int | None:
        """Child processes of the server (None where Linux does not say)."""
        path = f"/proc/{self.process.pid}/task/{self.process.pid}/children"
        try:
            with open(path, encoding="ascii") as file:
                return len(file.read().split())
        except OSError:
            return None

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit status after SIGTERM."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ReadyWatch(threading.Thread):
    """Polls /readyz every `interval` seconds from its own thread, counting
    the answers that are not 200 within 2 s."""

    def __init__(self, port: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.done = threading.Event()
        self.polls = self.failures = 0
        self.slowest = 0.0

    def run(self) -> None:
        while not self.done.is_set():
            started = time.perf_counter()
            try:
                ok = http_get(self.port, "/readyz", timeout=2)[0] == 200
            except OSError:
                ok = False
            self.polls += 1
            self.failures += not ok
            self.slowest = max(self.slowest, time.perf_counter() - started)
            self.done.wait(self.interval)

    def summary(self) -> dict:
        self.done.set()
        self.join()
        return {"polls": self.polls, "failures": self.failures, "slowest_ms": self.slowest * 1000}


def metrics(port: int) -> dict[str, float]:
    """The server's /metrics samples, by name with labels."""
    text = http_get(port, "/metrics")[1].decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def batch_sizes(before: dict, after: dict) -> dict:
    """The decoding calls between two /metrics scrapes, by batch size
    (`"<=8"`: more than the previous bucket, at most 8) and their mean."""
    bucket = re.compile(r'translation_batch_size_bucket\{le="([^"]+)"\}')
    counts, previous = {}, 0.0
    for name in sorted(
        (name for name in after if bucket.match(name)),
        key=lambda name: float(bucket.match(name).group(1)),
    ):
        cumulative = after[name] - before.get(name, 0.0)
        bound = bucket.match(name).group(1)
        label = "+Inf" if bound == "+Inf" else f"<={float(bound):g}"
        if cumulative - previous:
            counts[label] = int(cumulative - previous)
        previous = cumulative
    calls = after["translation_batch_size_count"] - before.get("translation_batch_size_count", 0)
    total = after["translation_batch_size_sum"] - before.get("translation_batch_size_sum", 0)
    return {"calls": int(calls), "mean": total / calls if calls else 0.0, "counts": counts}


# ------------------------------------------------------------------- figures


def percentile(values, q):
    """The `q`-th percentile of `values` (linear between closest ranks)."""
    if not values:
        return None
    values = sorted(values)
    position = (len(values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def summarize(outcomes: list[Outcome], elapsed: float) -> dict:
    """Counts by status, accepted sentences per second and the latency
    percentiles (ms) of the accepted requests."""
    accepted = [outcome for outcome in outcomes if outcome.status == 200]
    latencies = [outcome.seconds * 1000 for outcome in accepted]
    statuses = {}
    for outcome in outcomes:
        key = str(outcome.status) if outcome.status else (outcome.error or "no answer")
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "requests": len(outcomes),
        "seconds": elapsed,
        "sentences_per_s": sum(outcome.sentences for outcome in accepted) / elapsed,
        "statuses": statuses,
        "lost": sum(outcome.status is None and outcome.error is None for outcome in outcomes),
        **{f"p{q}_ms": percentile(latencies, q) for q in (50, 95, 99)},
        "max_ms": max(latencies, default=None),
    }


def report(phase: str, row: dict) -> None:
    print(json.dumps({"phase": phase, **row}), flush=True)


# ------------------------------------------------------------------- offline


def read_sources(path: str, count: int) -> list[str]:
    with open(path, encoding="utf-8") as file:
        sources = [line.rstrip("\n").split("\t")[0] for line in file]
    return [source for source in sources if source.strip()][:count]


def offline_reference(model: str, sentences: list[str]) -> tuple[dict, dict, list[str]]:
    """The offline translations of `sentences` (greedy), the seconds of a
    decoding call of each row count for a short sentence and the offline
    sentences/s of `Translator.translate` in batches of 1, 8, 32 and 64 (sorted
    by length: the most batching can give on this machine, without a
    server), and one sentence of each padded length."""
    from keras_transformer.serving import TranslatorModel, padded_length
    from keras_transformer.translation import load_translator

    started = time.perf_counter()
    translator = load_translator(model)
    translations = translator.translate(sentences, beams=1)
    reference = dict(zip(sentences, translations, strict=True))
    seconds = time.perf_counter() - started
    served = TranslatorModel(translator)
    counts = served.count_tokens(sentences)
    pairs = list(zip(counts, sentences, strict=True))
    one_per_length = {padded_length(count): sentence for count, sentence in pairs}
    short = min(pairs)[1]
    decode_ms = {}
    for rows in (1, 8, 32, 64):
        served.translate_batch([short], 1, rows)  # compiles
        times = []
        for _ in range(3):
            call = time.perf_counter()
            served.translate_batch([short], 1, rows)
            times.append(time.perf_counter() - call)
        decode_ms[rows] = percentile(times, 50) * 1000
    costs = {"reference_seconds": seconds, "short_sentence": short, "decode_ms_by_rows": decode_ms}
    costs["offline_sentences_per_s_by_batch"] = {}
    for batch_size in (1, 8, 32, 64):
        translator.translate(sentences, beams=1, batch_size=batch_size)  # compiles
        call = time.perf_counter()
        translator.translate(sentences, beams=1, batch_size=batch_size)
        rate = len(sentences) / (time.perf_counter() - call)
        costs["offline_sentences_per_s_by_batch"][batch_size] = rate
    costs["padded_lengths"] = sorted(one_per_length)
    return reference, costs, [one_per_length[length] for length in sorted(one_per_length)]


# -------------------------------------------------------------------- phases


def warm(server: Server, warm_sentences, checker) -> None:
    """One request per padded source length, so that the decoders of every
    shape the phases use are compiled before they are timed."""

    async def send():
        connection = Connection(server.port)
        try:
            for sentence in warm_sentences:
                outcome = await translate_once(connection, [sentence], checker, "warm-up")
                if outcome.status != 200:
                    raise RuntimeError(f"warm-up request failed: {outcome}\n{server.log()}")
        finally:
            connection.close()

    asyncio.run(send())


def levels_phase(server, plan, batches, checker, label) -> dict:
    rows = {}
    for clients in plan.levels:
        before = metrics(server.port)
        outcomes, elapsed = asyncio.run(
            closed_loop(
                server.port,
                clients,
                plan.level_seconds,
                plan.level_requests,
                batches,
                checker,
                f"{label} {clients}",
            )
        )
        row = summarize(outcomes, elapsed)
        row["batch_sizes"] = batch_sizes(before, metrics(server.port))
        rows[str(clients)] = row
        report(f"{label}, {clients} clients", row)
    return rows


def open_phase(server, rate, seconds, batches, checker, label, watch=False) -> dict:
    before = metrics(server.port)
    rss_before, fds_before = server.rss_mib(), server.open_fds()
    watcher = ReadyWatch(server.port) if watch else None
    if watcher:
        watcher.start()
    outcomes, elapsed, extra = asyncio.run(
        open_loop(server.port, rate, seconds, batches, checker, label)
    )
    row = {**summarize(outcomes, elapsed), **extra}
    row["lost"] += extra["unfinished"]
    if watcher:
        row["readyz"] = watcher.summary()
    answered = row["requests"] or 1
    row["share_429"] = row["statuses"].get("429", 0) / answered
    row["retry_after"] = sorted({o.retry_after for o in outcomes if o.retry_after}, key=int)
    row["batch_sizes"] = batch_sizes(before, metrics(server.port))
    time.sleep(1)  # the connections' file descriptors closed on the server's side
    row["rss_mib"] = [rss_before, server.rss_mib()]
    row["open_fds"] = [fds_before, server.open_fds()]
    report(label, row)
    return row


def soak_phase(server, plan, batches, checker) -> dict:
    rss_before, fds_before = server.rss_mib(), server.open_fds()
    outcomes, elapsed = asyncio.run(
        closed_loop(
            server.port,
            plan.soak_clients,
            plan.soak_seconds,
            plan.soak_requests,
            batches,
            checker,
            "soak",
        )
    )
    time.sleep(1)
    row = summarize(outcomes, elapsed)
    row["rss_mib"] = [rss_before, server.rss_mib()]
    row["open_fds"] = [fds_before, server.open_fds()]
    row["rss_growth"] = row["rss_mib"][1] / rss_before - 1
    report("soak", row)
    return row


def kill_phase(server, plan, batches, checker) -> dict:
    """8 clients send requests (each retrying 0.1 s after a failure) while the
    server is killed with SIGKILL and started again; they stop a few seconds
    after it is ready."""
    timing = {}

    async def run():
        stop = asyncio.Event()

        async def kill_and_restart():
            await asyncio.sleep(plan.kill_after_s)
            started = time.perf_counter()
            server.kill9()
            timing["kill_exit_status"] = server.process.returncode
            server.start()
            timing["restart_to_ready_s"] = await asyncio.to_thread(server.wait_ready)
            timing["kill_to_ready_s"] = time.perf_counter() - started
            await asyncio.sleep(plan.after_restart_s)
            stop.set()

        load = closed_loop(server.port, 8, 300, 10**6, batches, checker, "kill -9", stop)
        (outcomes, elapsed), _ = await asyncio.gather(load, kill_and_restart())
        return outcomes, elapsed

    outcomes, elapsed = asyncio.run(run())
    row = {**summarize(outcomes, elapsed), **timing}
    report("kill -9 and restart", row)
    return row


def bad_requests() -> list[tuple[str, str, str, object, int]]:
    """(kind, method, path, body, the documented status) of each malformed
    request; a body that is not bytes is sent as JSON."""
    hello = ["Hello."]
    post = "/v1/translate"
    return [
        ("bad JSON", "POST", post, b'{"sentences": ["Hello."', 400),
        ("invalid UTF-8", "POST", post, b'{"sentences": ["\xff\xfe"]}', 400),
        ("empty body", "POST", post, b"", 400),
        ("body not an object", "POST", post, ["Hello."], 400),
        ("sentences missing", "POST", post, {"beams": 1}, 422),
        ("sentences a string", "POST", post, {"sentences": "Hello."}, 422),
        ("sentences empty", "POST", post, {"sentences": []}, 422),
        ("non-string item", "POST", post, {"sentences": ["Hello.", 3]}, 422),
        ("null item", "POST", post, {"sentences": [None]}, 422),
        ("empty item", "POST", post, {"sentences": [""]}, 422),
        ("blank item", "POST", post, {"sentences": ["  \t"]}, 422),
        ("lone surrogate", "POST", post, b'{"sentences": ["\\ud800"]}', 422),
        ("beams 0", "POST", post, {"sentences": hello, "beams": 0}, 422),
        ("beams too large", "POST", post, {"sentences": hello, "beams": 9}, 422),
        ("beams 1.5", "POST", post, {"sentences": hello, "beams": 1.5}, 422),
        ("beams a string", "POST", post, {"sentences": hello, "beams": "2"}, 422),
        ("beams true", "POST", post, {"sentences": hello, "beams": True}, 422),
        ("unknown field", "POST", post, {"sentences": hello, "beam": 2}, 422),
        ("too many sentences", "POST", post, {"sentences": hello * 65}, 413),
        ("too many characters", "POST", post, {"sentences": ["a" * 1001]}, 413),
        ("too many tokens", "POST", post, {"sentences": ["word " * 190]}, 413),
        ("body too large", "POST", post, b'{"sentences": ["' + b"a" * 800_000 + b'"]}', 413),
        ("wrong method", "GET", post, b"", 405),
        ("unknown path", "POST", "/v1/translat", {"sentences": hello}, 404),
    ]


def bad_requests_phase(server, good_sentence, checker) -> dict:
    async def run():
        rows = []
        for kind, method, path, body, documented in bad_requests():
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            connection = Connection(server.port)
            try:
                status, _, answer = await connection.request(method, path, data)
                error = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exception:
                status, answer, error = None, b"", type(exception).__name__
            finally:
                connection.close()
            field = None
            with_fields = False
            try:
                document = json.loads(answer)
                with_fields = {"error", "field"} <= set(document)
                field = document.get("field")
            except (ValueError, AttributeError):
                pass
            rows.append(
                {
                    "kind": kind,
                    "status": status,
                    "documented": documented,
                    "field": field,
                    "error_body": with_fields,
                    "client_error": error,
                }
            )
        good = await translate_once(Connection(server.port), [good_sentence], checker, "bad")
        return rows, good

    rows, good = asyncio.run(run())
    result = {
        "requests": rows,
        "all_4xx": all(row["status"] is not None and 400 <= row["status"] < 500 for row in rows),
        "as_documented": sum(row["status"] == row["documented"] for row in rows),
        "readyz_after": http_get(server.port, "/readyz")[0],
        "good_request_after": good.status,
    }
    report("bad requests", {key: value for key, value in result.items() if key != "requests"})
    return result


def sigterm_phase(server, batches, checker) -> dict:
    """8 clients send requests; SIGTERM after 1 s; each client stops at its
    first failure. The requests in flight should be answered, and the server
    exit with status 0."""
    timing = {}

    async def run():
        stop = asyncio.Event()

        async def terminate():
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            server.process.send_signal(signal.SIGTERM)
            timing["exit_status"] = await asyncio.to_thread(server.process.wait, 60)
            timing["exit_seconds"] = time.perf_counter() - started
            stop.set()

        async def client():
            connection = Connection(server.port)
            outcomes = []
            try:
                for index in itertools.count():
                    outcome = await translate_once(
                        connection, batches[index % len(batches)], checker, "sigterm"
                    )
                    outcomes.append(outcome)
                    if outcome.status != 200 or stop.is_set():
                        return outcomes
            finally:
                connection.close()

        started = time.perf_counter()
        results = await asyncio.gather(terminate(), *(client() for _ in range(8)))
        return [o for outcomes in results[1:] for o in outcomes], time.perf_counter() - started

    outcomes, elapsed = asyncio.run(run())
    row = {**summarize(outcomes, elapsed), **timing}
    report("SIGTERM under load", row)
    return row


# -------------------------------------------------------------------- tables


def targets(results: dict) -> list[dict]:
    one = results["closed_loop"]["batch_of_one"]
    batched = results["closed_loop"]["batched"]
    level = "32" if "32" in batched else max(batched, key=int)
    overload, soak = results["overload"], results["soak"]
    unloaded_p99 = batched["1"]["p99_ms"]
    speedup = batched[level]["sentences_per_s"] / one[level]["sentences_per_s"]
    rss = overload["rss_mib"]
    rows = [
        (
            f"batched / batch of one, sentences/s at {level} clients",
            speedup,
            ">= 5",
            speedup >= 5,
        ),
        (
            f"batched p99 at {level} clients / batch-of-one p50 at 1 client",
            batched[level]["p99_ms"] / one["1"]["p50_ms"],
            "<= 2",
            batched[level]["p99_ms"] <= 2 * one["1"]["p50_ms"],
        ),
        (
            "overload: requests lost + mismatched (all phases)",
            overload["lost"] + results["correctness"]["mismatches"],
            "0",
            overload["lost"] + results["correctness"]["mismatches"] == 0,
        ),
        (
            "overload: p99 of accepted / unloaded p99 (batched, 1 client)",
            overload["p99_ms"] / unloaded_p99 if overload["p99_ms"] else None,
            "<= 3",
            overload["p99_ms"] is not None and overload["p99_ms"] <= 3 * unloaded_p99,
        ),
        ("overload: RSS growth", rss[1] / rss[0] - 1, "< 10%", rss[1] / rss[0] - 1 < 0.10),
    ]
    small = results.get("overload_small_queue")
    if small is not None:
        rows.append(
            (
                f"overload, queue of {small['max_queue']}: p99 of accepted / unloaded p99",
                small["p99_ms"] / unloaded_p99 if small["p99_ms"] else None,
                "<= 3",
                small["p99_ms"] is not None and small["p99_ms"] <= 3 * unloaded_p99,
            )
        )
    rows += [
        ("soak: RSS growth", soak["rss_growth"], "< 5%", soak["rss_growth"] < 0.05),
    ]
    return [
        {"target": name, "value": value, "threshold": threshold, "met": bool(met)}
        for name, value, threshold, met in rows
    ]


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def tables(results: dict) -> str:
    lines = [
        f"Machine: {results['machine']}; {results['date']}; model {results['model']}, "
        f"backend {results['backend']}",
        "",
        "| server | clients | sentences/s | p50 ms | p95 ms | p99 ms | mean batch | statuses |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, name in (("batch_of_one", "batch of one"), ("batched", "batched")):
        for clients, row in results["closed_loop"][label].items():
            lines.append(
                f"| {name} | {clients} | {row['sentences_per_s']:.1f} | {_ms(row['p50_ms'])} "
                f"| {_ms(row['p95_ms'])} | {_ms(row['p99_ms'])} "
                f"| {row['batch_sizes']['mean']:.1f} | {row['statuses']} |"
            )
    lines += [
        "",
        "| open loop | offered/s | sentences/s | p50 ms | p95 ms | p99 ms | 429 share "
        "| lost | RSS MiB before -> after | /readyz failures |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("open_loop", "overload", "overload_small_queue"):
        if name not in results:
            continue
        row = results[name]
        readyz = row.get("readyz", {}).get("failures", "-")
        lines.append(
            f"| {name.replace('_', ' ')} | {row['rate']:.1f} | {row['sentences_per_s']:.1f} "
            f"| {_ms(row['p50_ms'])} | {_ms(row['p95_ms'])} | {_ms(row['p99_ms'])} "
            f"| {row['share_429']:.1%} | {row['lost']} | {row['rss_mib'][0]:.0f} -> "
            f"{row['rss_mib'][1]:.0f} | {readyz} |"
        )
    lines += ["", "| target | value | threshold | met |", "| --- | --- | --- | --- |"]
    for row in results["targets"]:
        value = row["value"]
        shown = "-" if value is None else f"{value:.3g}"
        lines.append(
            f"| {row['target']} | {shown} | {row['threshold']} | {'yes' if row['met'] else 'no'} |"
        )
    lines += ["", "| bad request | status | documented | field |", "| --- | --- | --- | --- |"]
    for row in results["bad_requests"]["requests"]:
        lines.append(f"| {row['kind']} | {row['status']} | {row['documented']} | {row['field']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="run directory to serve")
    parser.add_argument("--sources", help="source<TAB>target file (default: the run's test split)")
    parser.add_argument("--sentences", type=int, default=200, help="first test sources sent")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="--max-batch-size of the batched server (default 8: offline, on 2 CPU cores, "
        "batches of 8 gave the most sentences/s; see offline_sentences_per_s_by_batch)",
    )
    parser.add_argument(
        "--max-wait-ms", type=float, help="--max-wait-ms of the batched server (default: its own)"
    )
    parser.add_argument(
        "--overload-queue",
        type=int,
        help="also overload a batched server whose --max-queue is this many sentences",
    )
    parser.add_argument("--backend", default="jax", help="Keras backend of server and reference")
    parser.add_argument(
        "--xla-single-thread",
        action="store_true",
        help=f"run the server with XLA_FLAGS={SINGLE_THREAD_XLA!r}",
    )
    parser.add_argument("--quick", action="store_true", help="every phase briefly")
    parser.add_argument("--save", action="store_true", help="write docs/serving_results.json")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend  # before Keras is imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    plan = QUICK if args.quick else FULL
    model = os.path.abspath(args.model)
    sources = args.sources or os.path.join(os.path.dirname(model), "scored_splits", "test.tsv")
    sentences = read_sources(sources, args.sentences)
    started = time.perf_counter()
    reference, offline, warm_sentences = offline_reference(model, sentences)
    report("offline", offline)
    batches = [[sentence] for sentence in sentences]
    checker = Checker(reference)
    env = {"XLA_FLAGS": SINGLE_THREAD_XLA} if args.xla_single_thread else {}
    batched_options = {"max_batch_size": args.batch_size}
    if args.max_wait_ms is not None:
        batched_options["max_wait_ms"] = args.max_wait_ms
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "model": os.path.relpath(model, ROOT),
        "backend": args.backend,
        "sentences": len(sentences),
        "quick": args.quick,
        "plan": dataclasses.asdict(plan),
        "server_env": env,
        "server_options": {"batch_of_one": {"max_batch_size": 1}, "batched": batched_options},
        "clients": "asyncio streams in one thread of this process, on the same cores",
        "offline": offline,
    }
    with tempfile.TemporaryDirectory() as logs:
        with Server(model, {"max_batch_size": 1}, args.backend, env, logs) as server:
            results["ready_seconds"] = {"batch_of_one": server.wait_ready()}
            results["server_child_processes"] = server.children()
            warm(server, warm_sentences, checker)
            results["closed_loop"] = {
                "batch_of_one": levels_phase(server, plan, batches, checker, "batch of one")
            }
            results["server_threads"] = {"batch_of_one": server.threads()}
            results["exit_status_sigterm_idle"] = server.stop()
        with Server(model, batched_options, args.backend, env, logs) as server:
            results["ready_seconds"]["batched"] = server.wait_ready()
            warm(server, warm_sentences, checker)
            levels = levels_phase(server, plan, batches, checker, "batched")
            results["closed_loop"]["batched"] = levels
            results["server_threads"]["batched"] = server.threads()
            capacity = max(row["sentences_per_s"] for row in levels.values())
            results["batched_capacity_sentences_per_s"] = capacity
            results["open_loop"] = open_phase(
                server, 0.7 * capacity, plan.open_seconds, batches, checker, "open loop 70%"
            )
            results["overload"] = open_phase(
                server, 2 * capacity, plan.overload_seconds, batches, checker, "overload 2x", True
            )
            # The shortest sentences: the soak counts requests, not decoding work.
            shortest = sorted(batches, key=lambda batch: len(batch[0]))[: len(batches) // 4]
            results["soak"] = soak_phase(server, plan, shortest, checker)
            results["kill_restart"] = kill_phase(server, plan, batches, checker)
            results["bad_requests"] = bad_requests_phase(server, sentences[0], checker)
            results["sigterm"] = sigterm_phase(server, batches, checker)
        if args.overload_queue:
            queue = args.overload_queue
            small_options = {**batched_options, "max_queue": queue, "max_sentences": queue}
            results["server_options"]["overload_small_queue"] = small_options
            with Server(model, small_options, args.backend, env, logs) as server:
                server.wait_ready()
                warm(server, warm_sentences, checker)
                row = open_phase(
                    server, 2 * capacity, plan.overload_seconds, batches, checker,
                    f"overload 2x, queue of {queue}", True,
                )  # fmt: skip
                results["overload_small_queue"] = {**row, "max_queue": queue}
    results["correctness"] = checker.summary()
    results["lost_total"] = sum(
        row["lost"]
        for row in [
            *results["closed_loop"]["batch_of_one"].values(),
            *results["closed_loop"]["batched"].values(),
            results["open_loop"],
            results["overload"],
            *([results["overload_small_queue"]] if "overload_small_queue" in results else []),
            results["soak"],
            results["kill_restart"],
            results["sigterm"],
        ]
    )
    results["targets"] = targets(results)
    results["wall_seconds"] = time.perf_counter() - started
    report("correctness", {**results["correctness"], "lost_total": results["lost_total"]})
    print(tables(results))
    if args.save:
        with open(os.path.join(DOCS, "serving_results.json"), "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
