// Package bench measures a running host end to end for `trellis bench`: it writes a throwaway
// app with a trivial handler, starts a real host on the backends it is given (embedded, Redis,
// ClickHouse), drives it through the same calls users make and reads the answers back from the
// execution log. It owns the measuring and the report, nothing the product runs.
package bench
