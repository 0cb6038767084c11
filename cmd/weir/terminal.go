package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether v, a reader or a writer, is a terminal (not
// merely a character device such as /dev/null).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlReadTermios)
	return err == nil
}
