#!/bin/bash
# store_prefetch.sh LIBIB_STORE: the replay store's sampling gather, as compiled, prefetches the
# rows it is about to copy. GCC 12 at -O2 once deleted every prefetch of the gather without a word
# (replay/store/store.c, prefetch_line), which made the gather up to twice as slow; no functional
# test can see that, so this one reads the machine code. x86 only: elsewhere it skips (77).
LIB="$1"
fail() {
  echo "FAIL: $*"
  exit 1
}
case "$(uname -m)" in
x86_64 | i?86) ;;
*)
  echo "SKIP: the prefetch check reads x86 machine code; this is $(uname -m)"
  exit 77
  ;;
esac
[ -f "$LIB" ] || fail "no store library at '$LIB'"
command -v objdump >/dev/null || fail "objdump not found (Debian package binutils)"
dis() { objdump -d --no-show-raw-insn --disassemble="$1" "$LIB"; }
# A function prefetches if its own code does, or if it calls prefetch_record and that does.
rec=$(dis prefetch_record | grep -c prefetch)
for f in gather gather_cols; do
  code=$(dis "$f")
  grep -q "<$f>:" <<<"$code" || fail "no function '$f' in $LIB (renamed? update this test)"
  own=$(grep -c prefetch <<<"$code")
  calls=$(grep -c "call.*<prefetch_record>" <<<"$code")
  if [ "$own" -eq 0 ] && { [ "$calls" -eq 0 ] || [ "$rec" -eq 0 ]; }; then
    fail "$f has no prefetch instruction (own $own; calls prefetch_record $calls times, which has $rec): the compiler dropped the gather's prefetch"
  fi
  echo "ok: $f prefetches (own $own, through prefetch_record $calls x $rec)"
done
