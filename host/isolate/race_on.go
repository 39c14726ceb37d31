//go:build race

package isolate

// raceBuild is true when the binary has the race detector, whose shadow memory makes every byte
// the JavaScript allocates cost about 2 bytes of RSS and 3.5 bytes of address space more.
const raceBuild = true
