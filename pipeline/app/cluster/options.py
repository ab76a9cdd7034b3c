"""The options of ``vicocam serve --cluster``, read by `pipeline.app.cluster.command`."""

from __future__ import annotations

import argparse

from pipeline.app.options import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--cluster [ADDRESS]`` and the session hosts' sizes and scaling."""
    group = parser.add_argument_group(
        "cluster", "Serve past one machine: sessions run on Ray Serve replicas (one model and "
                   "up to --sessions-per-replica sessions each); this process serves the page "
                   "and forwards each offer. Needs: pip install 'vicocam[cluster]'")
    group.add_argument("--cluster", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="run the sessions on a Ray cluster: ADDRESS is 'auto' or HOST:PORT "
                            "of 'ray start --head'; without it a local Ray is started here. "
                            "--max-sessions is then --max-replicas x --sessions-per-replica")
    group.add_argument("--sessions-per-replica", type=positive_int, default=4, metavar="N",
                       help="live sessions one replica holds (4)")
    group.add_argument("--replica-cpus", type=non_negative_float, default=1.0, metavar="N",
                       help="CPUs Ray reserves for each replica (1; fractions allowed)")
    group.add_argument("--replica-gpus", type=non_negative_float, default=None, metavar="N",
                       help="GPUs Ray reserves for each replica (0; 1 with --device cuda)")
    group.add_argument("--min-replicas", type=non_negative_int, default=1, metavar="N",
                       help="replicas kept up with no session (1)")
    group.add_argument("--max-replicas", type=positive_int, default=2, metavar="N",
                       help="most replicas the autoscaler starts (2)")
    group.add_argument("--target-sessions", type=positive_float, default=None, metavar="N",
                       help="sessions per replica the autoscaler aims at (default: "
                            "--sessions-per-replica: a replica is added when a session waits "
                            "for room; lower adds one earlier, before the last slot is taken)")
    group.add_argument("--upscale-delay", type=non_negative_float, default=1.0, metavar="S",
                       help="seconds a need for another replica must last before one starts (1)")
    group.add_argument("--downscale-delay", type=non_negative_float, default=60.0, metavar="S",
                       help="seconds replicas must be idle before they are stopped (60)")
    group.add_argument("--drain-timeout", type=non_negative_float, default=600.0, metavar="S",
                       help="how long a replica being stopped waits for its live sessions to "
                            "end (600)")
    group.add_argument("--answer-timeout", type=positive_float, default=60.0, metavar="S",
                       help="longest an offer waits for a replica, e.g. while one starts (60); "
                            "then 503")
