#!/bin/sh
# Runs the libFuzzer targets built by test/fuzz/fuzz.mk. Run from the
# repository root.
#
#   run.sh regress DIR 0 TARGET...             replay test/fuzz/regress/TARGET/*
#   run.sh fuzz DIR SECONDS TARGET:MAXLEN...   fuzz each target for SECONDS
#
# `fuzz` copies the seed corpus test/fuzz/corpus/TARGET/ into DIR/corpus/TARGET/
# and lets libFuzzer grow that copy (the git tree is never written); a crash or
# property violation is saved in DIR/artifacts/TARGET/. Every target runs even
# if an earlier one failed; the exit status is 1 if any failed.
mode=$1 dir=$2 secs=$3
shift 3
fail=0
for spec in "$@"; do
    t=${spec%%:*}
    bin=$dir/$t
    if [ "$mode" = regress ]; then
        r=test/fuzz/regress/$t
        [ -d "$r" ] && [ -n "$(ls -A "$r")" ] || continue
        echo "== $t: replaying $r"
        if ! "$bin" "$r"/* >"$dir/$t.regress.log" 2>&1; then
            fail=1
            echo "!! $t: a reproducer in $r fails again (log $dir/$t.regress.log):"
            tail -40 "$dir/$t.regress.log"
        fi
        continue
    fi
    maxlen=${spec#*:}
    corpus=$dir/corpus/$t art=$dir/artifacts/$t
    mkdir -p "$corpus" "$art"
    cp test/fuzz/corpus/"$t"/* "$corpus"/
    dict=
    [ -f test/fuzz/"$t".dict ] && dict=-dict=test/fuzz/$t.dict
    echo "== $t: ${secs}s, -max_len=$maxlen, corpus $corpus"
    if "$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 \
            -print_final_stats=1 -artifact_prefix="$art"/ $dict "$corpus" \
            >"$dir/$t.log" 2>&1; then
        # the last status line (#N DONE cov: ft: corp: exec/s:) and the totals
        grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/$t.log" | tail -1
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$dir/$t.log" |
            tr '\n' ' '
        echo
    else
        fail=1
        echo "!! $t failed; log $dir/$t.log, input saved in $art/:"
        tail -60 "$dir/$t.log"
    fi
done
exit $fail
