# ruff: noqa: E501  -- the strings below are other languages' source code, kept on natural lines.
"""Test programs, one per language: each takes a mode as its first argument.

Modes: hello (print "Hello, World!"), sum (sum the integers on stdin), crash (a runtime
error: uncaught exception or bad memory access), loop (spin forever on the CPU), hog
(allocate and touch memory until stopped), big (print exactly 1 MiB: 1024 lines of
1023 'x' and a newline). BROKEN is a program that does not compile, with a fragment of
the compiler's message (None for interpreted languages).
"""

from __future__ import annotations

MULTI: dict[str, str] = {}
BROKEN: dict[str, tuple[str, str]] = {}

MULTI["c"] = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    const char *m = argc > 1 ? argv[1] : "hello";
    if (!strcmp(m, "hello")) { puts("Hello, World!"); return 0; }
    if (!strcmp(m, "sum")) { long long s = 0, x; while (scanf("%lld", &x) == 1) s += x; printf("%lld\n", s); return 0; }
    if (!strcmp(m, "crash")) { volatile int *p = NULL; *p = 1; return 0; }
    if (!strcmp(m, "loop")) { volatile unsigned long i = 0; for (;;) i++; }
    if (!strcmp(m, "hog")) { for (;;) { char *p = malloc(1 << 20); if (!p) return 3; memset(p, 1, 1 << 20); } }
    if (!strcmp(m, "big")) { char line[1025]; memset(line, 'x', 1023); line[1023] = '\n'; line[1024] = 0;
        for (int i = 0; i < 1024; i++) fputs(line, stdout); return 0; }
    return 2;
}
"""
BROKEN["c"] = ("int main(void) { return undefined_name; }\n", "undefined_name")

MULTI["cpp"] = r"""
#include <iostream>
#include <string>
#include <vector>
#include <stdexcept>
#include <cstring>
int main(int argc, char **argv) {
    std::string m = argc > 1 ? argv[1] : "hello";
    if (m == "hello") { std::cout << "Hello, World!\n"; return 0; }
    if (m == "sum") { long long s = 0, x; while (std::cin >> x) s += x; std::cout << s << "\n"; return 0; }
    if (m == "crash") { throw std::runtime_error("boom"); }
    if (m == "loop") { volatile unsigned long i = 0; for (;;) i++; }
    if (m == "hog") { std::vector<char*> v; for (;;) { char *p = new char[1 << 20]; std::memset(p, 1, 1 << 20); v.push_back(p); } }
    if (m == "big") { std::string line(1023, 'x'); line += '\n'; for (int i = 0; i < 1024; i++) std::cout << line; return 0; }
    return 2;
}
"""
BROKEN["cpp"] = ("int main() { std::string s; return 0 }\n", "error")

MULTI["python3"] = r"""
import sys
m = sys.argv[1] if len(sys.argv) > 1 else "hello"
if m == "hello":
    print("Hello, World!")
elif m == "sum":
    print(sum(int(x) for x in sys.stdin.read().split()))
elif m == "crash":
    raise ValueError("boom")
elif m == "loop":
    while True:
        pass
elif m == "hog":
    a = []
    while True:
        a.append(b"x" * (1 << 20))
elif m == "big":
    sys.stdout.write(("x" * 1023 + "\n") * 1024)
"""

MULTI["java"] = r"""
import java.io.*;
import java.util.*;
public class Main {
    public static void main(String[] args) throws Exception {
        String m = args.length > 0 ? args[0] : "hello";
        switch (m) {
            case "hello": System.out.println("Hello, World!"); break;
            case "sum": {
                BufferedReader r = new BufferedReader(new InputStreamReader(System.in));
                long s = 0; String line;
                while ((line = r.readLine()) != null)
                    for (String t : line.trim().split("\\s+")) if (!t.isEmpty()) s += Long.parseLong(t);
                System.out.println(s); break;
            }
            case "crash": throw new IllegalStateException("boom");
            case "loop": { long i = 0; while (true) { i++; if (i == -1) break; } break; }
            case "hog": { List<byte[]> l = new ArrayList<>(); while (true) { byte[] b = new byte[1 << 20]; Arrays.fill(b, (byte) 1); l.add(b); } }
            case "big": {
                StringBuilder sb = new StringBuilder(); for (int i = 0; i < 1023; i++) sb.append('x'); sb.append('\n');
                PrintStream out = new PrintStream(new BufferedOutputStream(System.out, 1 << 16), false);
                for (int i = 0; i < 1024; i++) out.print(sb); out.flush(); break;
            }
        }
    }
}
"""
BROKEN["java"] = ('public class Main { public static void main(String[] a) { int x = "s"; } }\n', "incompatible types")

MULTI["kotlin"] = r"""
fun main(args: Array<String>) {
    val m = if (args.isNotEmpty()) args[0] else "hello"
    when (m) {
        "hello" -> println("Hello, World!")
        "sum" -> println(generateSequence(::readLine).flatMap { it.split(' ', '\t').filter { t -> t.isNotEmpty() }.asSequence() }.map { it.toLong() }.sum())
        "crash" -> throw IllegalStateException("boom")
        "loop" -> { var i = 0L; while (i != -1L) { i++ } }
        "hog" -> { val l = ArrayList<ByteArray>(); while (true) { val b = ByteArray(1 shl 20); b.fill(1); l.add(b) } }
        "big" -> { val line = "x".repeat(1023) + "\n"; val sb = StringBuilder(); repeat(1024) { sb.append(line) }; print(sb); System.out.flush() }
    }
}
"""
BROKEN["kotlin"] = ('fun main() { val x: Int = "s" }\n', "type mismatch")

MULTI["javascript"] = r"""
const m = process.argv[2] || "hello";
if (m === "hello") console.log("Hello, World!");
else if (m === "sum") {
  const s = require("fs").readFileSync(0, "utf8").split(/\s+/).filter(Boolean).reduce((a, x) => a + BigInt(x), 0n);
  console.log(s.toString());
} else if (m === "crash") throw new Error("boom");
else if (m === "loop") { for (;;) {} }
else if (m === "hog") { const a = []; for (;;) a.push(new Array(1 << 17).fill(1.5)); }
else if (m === "big") process.stdout.write(("x".repeat(1023) + "\n").repeat(1024));
"""

MULTI["typescript"] = r"""
const m: string = process.argv[2] || "hello";
function sum(text: string): number {
  let s: number = 0;
  for (const t of text.split(/\s+/)) if (t.length > 0) s += parseInt(t, 10);
  return s;
}
if (m === "hello") console.log("Hello, World!");
else if (m === "sum") console.log(String(sum(require("fs").readFileSync(0, "utf8"))));
else if (m === "crash") throw new Error("boom");
else if (m === "loop") { for (;;) {} }
else if (m === "hog") { const a: number[][] = []; for (;;) a.push(new Array(1 << 17).fill(1.5)); }
else if (m === "big") process.stdout.write(("x".repeat(1023) + "\n").repeat(1024));
"""
BROKEN["typescript"] = ('let x: number = "s";\nconsole.log(x);\n', "not assignable")

MULTI["go"] = r"""
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

func main() {
	m := "hello"
	if len(os.Args) > 1 {
		m = os.Args[1]
	}
	switch m {
	case "hello":
		fmt.Println("Hello, World!")
	case "sum":
		r := bufio.NewReader(os.Stdin)
		var s, x int64
		for {
			if _, err := fmt.Fscan(r, &x); err != nil {
				break
			}
			s += x
		}
		fmt.Println(s)
	case "crash":
		var a []int
		fmt.Println(a[len(os.Args)+3])
	case "loop":
		i := 0
		for {
			i++
		}
	case "hog":
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "big":
		w := bufio.NewWriter(os.Stdout)
		line := strings.Repeat("x", 1023) + "\n"
		for i := 0; i < 1024; i++ {
			w.WriteString(line)
		}
		w.Flush()
	}
}
"""
BROKEN["go"] = ("package main\n\nfunc main() {\n\tx := 1\n}\n", "declared but not used")

MULTI["rust"] = r"""
use std::io::{self, Read, Write};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let m = args.get(1).map(|s| s.as_str()).unwrap_or("hello");
    match m {
        "hello" => println!("Hello, World!"),
        "sum" => {
            let mut s = String::new();
            io::stdin().read_to_string(&mut s).unwrap();
            let t: i64 = s.split_whitespace().map(|x| x.parse::<i64>().unwrap()).sum();
            println!("{}", t);
        }
        "crash" => { let v: Vec<i32> = Vec::new(); println!("{}", v[args.len() + 3]); }
        "loop" => { let mut i: u64 = 0; loop { unsafe { std::ptr::write_volatile(&mut i, i.wrapping_add(1)); } } }
        "hog" => { let mut keep: Vec<Vec<u8>> = Vec::new(); loop { keep.push(vec![1u8; 1 << 20]); } }
        "big" => {
            let line = "x".repeat(1023) + "\n";
            let out = io::stdout(); let mut w = io::BufWriter::new(out.lock());
            for _ in 0..1024 { w.write_all(line.as_bytes()).unwrap(); }
        }
        _ => std::process::exit(2),
    }
}
"""
BROKEN["rust"] = ('fn main() { let x: i32 = "s"; }\n', "mismatched types")

MULTI["ruby"] = r"""
m = ARGV[0] || "hello"
case m
when "hello" then puts "Hello, World!"
when "sum" then puts STDIN.read.split.map(&:to_i).sum
when "crash" then raise ArgumentError, "boom"
when "loop" then loop { }
when "hog"
  a = []
  loop { a << ("x" * (1 << 20)) }
when "big" then $stdout.write(("x" * 1023 + "\n") * 1024)
end
"""

MULTI["php"] = r"""<?php
$m = $argv[1] ?? "hello";
if ($m === "hello") { echo "Hello, World!\n"; }
elseif ($m === "sum") { $s = 0; foreach (preg_split('/\s+/', stream_get_contents(STDIN), -1, PREG_SPLIT_NO_EMPTY) as $t) $s += intval($t); echo $s, "\n"; }
elseif ($m === "crash") { throw new Exception("boom"); }
elseif ($m === "loop") { while (true) {} }
elseif ($m === "hog") { $a = []; while (true) { $a[] = str_repeat("x", 1 << 20) . count($a); } }
elseif ($m === "big") { echo str_repeat(str_repeat("x", 1023) . "\n", 1024); }
"""

MULTI["bash"] = r"""
m=${1:-hello}
case "$m" in
hello) echo "Hello, World!" ;;
sum) s=0; while read -r -a xs; do for x in "${xs[@]}"; do s=$((s + x)); done; done; echo "$s" ;;
crash) echo "boom" >&2; exit 3 ;;
loop) while :; do :; done ;;
hog) s=xxxxxxxxxxxxxxxx; while :; do s="$s$s"; done ;;
big) line=$(printf 'x%.0s' {1..1023}); for ((i = 0; i < 1024; i++)); do printf '%s\n' "$line"; done ;;
esac
"""

MULTI["lua"] = r"""
local m = arg[1] or "hello"
if m == "hello" then print("Hello, World!")
elseif m == "sum" then
  local s = 0
  for x in io.read("a"):gmatch("%-?%d+") do s = s + math.tointeger(x) end
  print(s)
elseif m == "crash" then error("boom")
elseif m == "loop" then while true do end
elseif m == "hog" then
  local t = {}
  while true do t[#t + 1] = string.rep("x", 1 << 20) .. #t end
elseif m == "big" then io.write(string.rep(string.rep("x", 1023) .. "\n", 1024))
end
"""

# "executable" runs the C program, built statically on the host by the tests.
SUM_INPUT = " ".join(str(i) for i in range(1, 1001)).encode() + b"\n1 2\n"
SUM_EXPECTED = str(sum(range(1, 1001)) + 3)

# Languages every worker host must offer (deploy/debian-packages.txt): missing = failure.
CORE = ["c", "cpp", "python3", "java", "javascript", "go", "rust", "bash", "executable"]
# Languages from deploy/debian-packages-extra.txt.
EXTRA = ["typescript", "ruby", "php", "lua", "kotlin"]
