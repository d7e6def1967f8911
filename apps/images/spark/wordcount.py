"""Word count on a Spark cluster, the batch job of apps/spark-wordcount.json.

    spark-submit /opt/zoe/wordcount.py [INPUT [OUTPUT]]

Counts the whitespace-separated words of INPUT (default /mnt/workspace/wordcount/input.txt)
and writes text files OUTPUT/part-* (default /mnt/workspace/wordcount/output) of
`word<TAB>count` lines; an existing OUTPUT folder is replaced. Whitespace is ASCII whitespace
(space, tab, newline, carriage return, vertical tab, form feed), like coreutils in the C locale.
Both paths must be on a folder that the driver and every executor see at the same path (Zoe's
workspace mount): executors read their share of the input and write their part files there.
When INPUT does not exist, a small sample text is written there first (and said so).
"""

import os
import re
import shutil
import sys
import time

from pyspark.sql import SparkSession

DEFAULT_INPUT = "/mnt/workspace/wordcount/input.txt"
DEFAULT_OUTPUT = "/mnt/workspace/wordcount/output"
WHITESPACE = re.compile(r"[ \t\n\r\v\f]+")
SAMPLE = """\
Zoe runs analytics applications as a service.
A Spark master, two Spark workers and this word count job run as one Zoe execution.
Replace this file with your own text and run the word count again.
"""


def main(argv):
    if len(argv) > 3:
        print(__doc__, file=sys.stderr)
        return 2
    input_path = os.path.abspath(argv[1] if len(argv) > 1 else DEFAULT_INPUT)
    output_path = os.path.abspath(argv[2] if len(argv) > 2 else DEFAULT_OUTPUT)

    if not os.path.exists(input_path):
        os.makedirs(os.path.dirname(input_path), exist_ok=True)
        with open(input_path, "w", encoding="utf-8") as f:
            f.write(SAMPLE)
        print(f"wordcount: {input_path} did not exist: wrote a sample text there", flush=True)
    if os.path.isdir(output_path):
        shutil.rmtree(output_path)
    elif os.path.exists(output_path):
        os.remove(output_path)

    start = time.monotonic()
    spark = SparkSession.builder.appName("zoe-wordcount").getOrCreate()
    try:
        sc = spark.sparkContext
        print(f"wordcount: master {sc.master}, counting the words of {input_path}", flush=True)
        counts = (
            sc.textFile("file://" + input_path)
            .flatMap(lambda line: [w for w in WHITESPACE.split(line) if w])
            .map(lambda word: (word, 1))
            .reduceByKey(lambda a, b: a + b)
            .cache()
        )
        counts.map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFile("file://" + output_path)
        distinct, total = counts.map(lambda kv: (1, kv[1])).fold(
            (0, 0), lambda a, b: (a[0] + b[0], a[1] + b[1])
        )
    finally:
        spark.stop()
    print(
        f"wordcount: {total} words, {distinct} distinct, written to {output_path}/part-* "
        f"in {time.monotonic() - start:.1f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
