//go:build !race

package isolate

// raceBuild is true when the binary has the race detector (see race_on.go).
const raceBuild = false
