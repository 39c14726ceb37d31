package jscompile

import (
	"strings"
	"testing"
)

// fill repeats line up to MaxSourceBytes.
func fill(line string) string { return strings.Repeat(line, MaxSourceBytes/len(line)) }

// BenchmarkModuleWorstAccepted compiles 1 MiB sources shaped to cost goja's compiler the most
// that the limits still allow (each a Module call: scan, parse, tree check, compile), beside
// 1 MiB of ordinary code. Before the limits, a single 100,000-term sum took 70 s and a 40-term
// constant && chain never finished.
func BenchmarkModuleWorstAccepted(b *testing.B) {
	for _, c := range []struct{ name, src string }{
		{"ordinary", fill("var a = b ? c : d; x = (y + z) * [1, 2][0]; f(a, b.c, 'd' + e);\n")},
		{"sum-chains-990", fill("x = " + strings.Repeat("x+", 990) + "1;\n")},
		{"constant-sum-chains-990", fill("x = " + strings.Repeat("1+", 990) + "1;\n")},
		{"nested-arrows-990", fill("x = " + strings.Repeat("a=>", 990) + "1;\n")},
		{"constant-and-chains-at-the-total", strings.Repeat("x = "+strings.Repeat("1 && ", 14)+"1;\n", MaxFoldStepsTotal/50_000)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.src)))
			for b.Loop() {
				if _, _, p := Module("index.js", c.src); p != nil {
					b.Fatal(p.Message)
				}
			}
		})
	}
}
