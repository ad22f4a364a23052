"""Tables at the size users hold them: the marginal family's memory and time as the rows grow.

    .venv/bin/python benchmarks/table_scale.py                        # 1M and 10M rows (about 15 min on 2 cores)
    .venv/bin/python benchmarks/table_scale.py --rows 1000000

Adult's 48,842 rows (../shared/data/adult) are repeated to each size into a CSV with Adult's domain file (14 integer-
coded columns), and `tfdpgen train --model marginal --dataset adult --data-dir DIR --epsilon 1 --delta 1e-8` runs on
it in a child process: its wall time and its peak resident memory (the kernel's count for that child, `wait4`'s
ru_maxrss: measured, not estimated) beside the CSV's size. Repeated rows are no data set anyone should release; they
only make the table large with a realistic domain. Writes benchmarks/results/table_scale.json (rows of other sizes are
kept) and prints a table.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ADULT = os.path.join(ROOT, "..", "shared", "data", "adult")
COMMAND = ["train", "--model", "marginal", "--dataset", "adult", "--epsilon", "1", "--delta", "1e-8", "--seed", "0",
           "--checkpoint-every", "1000000"]


def repeated_adult(rows: int, folder: str) -> str:
    """A folder holding adult.csv of `rows` rows (Adult's rows repeated in order, then cut) and adult-domain.json."""
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(os.path.join(ADULT, "adult-domain.json"), os.path.join(folder, "adult-domain.json"))
    with open(os.path.join(ADULT, "adult.csv")) as f:
        header, *lines = f.read().splitlines(keepends=True)
    block = "".join(lines)
    with open(os.path.join(folder, "adult.csv"), "w") as f:
        f.write(header)
        written = 0
        while written + len(lines) <= rows:
            f.write(block)
            written += len(lines)
        f.write("".join(lines[:rows - written]))
    return folder


def measured_run(data_dir: str, output: str) -> dict:
    """Wall time and peak resident memory of one `tfdpgen train` child process."""
    command = [sys.executable, "-c", "import sys; from tfdpgen.cli import main; sys.exit(main(sys.argv[1:]))",
               *COMMAND, "--data-dir", data_dir, "--output", output]
    begun = time.time()
    child = subprocess.Popen(command, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.time() - begun
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"tfdpgen train failed on {data_dir} (exit {os.waitstatus_to_exitcode(status)})")
    with open(os.path.join(output, "privacy.json")) as f:
        report = json.load(f)
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "epsilon": report["epsilon"],
            "delta": report["delta"], "dataset_size": report["dataset_size"]}


def markdown(rows) -> str:
    lines = ["| rows | CSV (MB) | wall time (s) | peak resident memory (MB) | epsilon |", "|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda row: row["rows"]):
        lines.append(f"| {row['rows']:,} | {row['csv_mb']:.0f} | {row['seconds']:.0f} | {row['peak_rss_mb']:.0f} | "
                     f"{row['epsilon']:.3g} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--output", default=os.path.join(HERE, "results", "table_scale.json"))
    parser.add_argument("--markdown", action="store_true", help="print the table of the output's rows and stop")
    args = parser.parse_args()
    rows = json.load(open(args.output))["rows"] if os.path.exists(args.output) else []
    if args.markdown:
        print(markdown(rows))
        return
    work = tempfile.mkdtemp(prefix="tfdpgen-table-scale-")
    try:
        for count in args.rows:
            folder = repeated_adult(count, os.path.join(work, f"adult-{count}"))
            row = {"rows": count, "csv_mb": os.path.getsize(os.path.join(folder, "adult.csv")) / 2**20,
                   **measured_run(folder, os.path.join(work, f"run-{count}"))}
            print(json.dumps(row), flush=True)
            rows = [old for old in rows if old["rows"] != count] + [row]
            shutil.rmtree(folder)
            with open(args.output, "w") as f:
                json.dump({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                           "command": "tfdpgen " + " ".join(COMMAND) + " --data-dir DIR", "rows": rows}, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
