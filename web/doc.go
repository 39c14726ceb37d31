// Package web is Trellis's HTTP face: the JSON API of docs/reference.md §6 on echo, bearer-token auth,
// the one place where errors become HTTP statuses, and the embedded editor and console.
//
// It reaches the host only through the small interfaces of deps.go, so its tests drive a real host on
// embedded storage; it must not load apps, run JavaScript or touch storage itself.
package web
