"""``vicocam bench NAME [--seconds S | --minutes M] [--runs N] [--no-pin] [--json PATH]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.app.model_options import add_model_options, model_spec
from pipeline.app.options import (
    add_adaptive_option,
    add_encoder_option,
    add_json_option,
    command_line,
    positive_float,
    positive_int,
)
from pipeline.errors import UserError

if TYPE_CHECKING:
    from benchmarks.registry import BenchOptions


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from benchmarks.registry import BENCHMARKS

    listing = "\n".join(f"  {s.name:<12} {s.help}" for s in BENCHMARKS.values())
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark and write its figures as JSON",
        description=f"Run one benchmark. Available:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="benchmark name (see above)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=positive_float, default=None, help="rough run time")
    length.add_argument("--minutes", type=positive_float, default=None,
                        help="rough run time in minutes (the same as --seconds 60*M)")
    parser.add_argument("--mode", choices=("serve", "run", "user", "kernel"), default=None,
                        help="soak: serve (the server with churning peers, default) or run "
                             "(the live path of 'vicocam run'); network: user (the peer's "
                             "packets shaped in user space, default) or kernel (tc netem on "
                             "lo: root, its own network namespace, a kernel with netem)")
    parser.add_argument("--runs", type=positive_int, default=1,
                        help="run it N times; the figures are the medians, with each run's "
                             "figures and the spread (min, max) beside them (1)")
    parser.add_argument("--max-sessions", type=positive_int, default=None, metavar="N",
                        help="sessions benchmark: the most sessions at once to try (8); also the "
                             "engines' largest batch")
    parser.add_argument("--sessions", type=positive_int, default=None, metavar="N",
                        help="cluster benchmark: sessions in each phase (4)")
    parser.add_argument("--replicas", type=positive_int, default=None, metavar="N",
                        help="cluster benchmark: Ray Serve replicas, one of them killed (2)")
    parser.add_argument("--stage-threads", type=positive_int, default=None, metavar="N",
                        help="contention and the webrtc benchmarks: worker threads the stages "
                             "are dealt into (default: one per core; 8 gives each stage its own)")
    parser.add_argument("--gil-switch-ms", type=positive_float, default=None, metavar="MS",
                        help="the GIL's switch interval for the whole run (see benchmarks.gil; "
                             "default: CPython's, as 'vicocam run' and 'serve' use)")
    _webrtc_arguments(parser)
    model = parser.add_argument_group(
        "model", "for the benchmarks that run one model (live, sessions): the bundled model "
                 "on the CPU unless given")
    add_model_options(model)
    add_json_option(parser)
    parser.set_defaults(handler=run_bench)


def _webrtc_arguments(parser: argparse.ArgumentParser) -> None:
    """What the WebRTC benchmarks' server and browser run with."""
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="WebRTC benchmarks: let the browser and the server share every core "
                             "(default: browser on one core, server on the others)")
    add_adaptive_option(parser, "the webrtc and sessions benchmarks: the sessions' head limit "
                                "follows what pays, as 'vicocam serve' (default); "
                                "--no-adaptive-in-flight: fixed")
    parser.add_argument("--thawed-heap", dest="freeze_heap", action="store_false",
                        help="the webrtc benchmarks: do not freeze the server's heap as "
                             "'vicocam serve' does, to measure what freezing it changes")
    add_encoder_option(parser)
    parser.add_argument("--burners", type=int, default=0, metavar="N",
                        help="the webrtc benchmarks: N processes spinning on the CPU beside "
                             "the browser and the server, on every core (another busy program "
                             "on the same laptop; default 0)")
    parser.add_argument("--burner-counts", type=_counts, default=None, metavar="N,N...",
                        help="contention: measure beside these numbers of burners only "
                             "(default: 0,1,2,6)")


def _counts(text: str) -> tuple[int, ...]:
    """``2,6`` -> ``(2, 6)``: distinct numbers of burners, 0 or more, in order."""
    try:
        counts = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 2,6, got {text!r}") from None
    if counts[0] < 0:
        raise argparse.ArgumentTypeError(f"burner counts must be 0 or more, got {text!r}")
    return counts


def run_bench(args: argparse.Namespace) -> int:
    from benchmarks.common import median_of_runs, write_result
    from benchmarks.gil import gil_switch_interval
    from benchmarks.registry import BENCHMARKS, MAX_SESSIONS, BenchOptions

    if args.burners < 0:
        raise UserError(f"--burners must be 0 or more, got {args.burners}")
    spec = BENCHMARKS.get(args.name)
    if spec is None:
        raise UserError(f"unknown benchmark {args.name!r}; choose one of: {', '.join(BENCHMARKS)}")
    run = spec.load()
    sessions = args.max_sessions or MAX_SESSIONS
    # The engines' largest batch is the most sessions: one call may carry them all.
    seconds = args.seconds if args.minutes is None else args.minutes * 60
    options = BenchOptions(seconds=seconds, pin=args.pin,
                           model=model_spec(args, max_batch=sessions),
                           max_sessions=sessions, json_path=args.json, mode=args.mode,
                           sessions=args.sessions, replicas=args.replicas,
                           stage_threads=args.stage_threads,
                           adaptive_in_flight=args.adaptive_in_flight,
                           freeze_heap=args.freeze_heap,
                           encode_in_sink=args.encode_in == "sink",
                           burners=args.burners, burner_counts=args.burner_counts)
    switch_s = None if args.gil_switch_ms is None else args.gil_switch_ms / 1000
    with gil_switch_interval(switch_s) as interval:
        runs = [{**_timed_run(run, options), "gil_switch_ms": round(interval * 1000, 3)}
                for _ in range(args.runs)]
    for number, figures in enumerate(runs, start=1):
        warning = steal_warning(figures.get("cpu_steal_share"), number, len(runs))
        if warning:
            print(warning, file=sys.stderr)
    figures = runs[0] if args.runs == 1 else median_of_runs(runs)
    command = command_line(f"vicocam bench {spec.name}")
    print(write_result(figures, args.json, name=spec.name, command=command))
    return 0


STEAL_WARN = 0.03
"""Above this share of the CPU time stolen by the hypervisor, a run is flagged: in
the WebRTC runs of `benchmarks/RESULTS.md` ("Stolen CPU time") every run under 3 %
held its frame rate and every run over 10 % stalled many times a minute."""


def steal_warning(share: object, number: int, runs: int) -> str | None:
    """What to tell the user about a run whose cores were partly taken by other guests."""
    if not isinstance(share, float) or share <= STEAL_WARN:
        return None
    which = f"run {number} of {runs}" if runs > 1 else "this run"
    return (f"warning: during {which} the hypervisor gave {share:.1%} of the CPU time to "
            f"other guests (cpu_steal_share); its figures are not comparable with runs on "
            f"a quiet host")


def _timed_run(run: Callable[[BenchOptions], dict[str, Any]],
               options: BenchOptions) -> dict[str, Any]:
    """One run's figures and how the machine's time went meanwhile (`pipeline.provenance`):
    a run whose cores were partly stolen by the hypervisor says so in its own JSON."""
    from pipeline.provenance import cpu_shares, cpu_times

    before = cpu_times()
    figures = run(options)
    after = cpu_times()
    if before is None or after is None:
        return figures
    return {**figures, **cpu_shares(before, after)}
