// The pod sandbox's "pause" process for the real node: holds the pod's
// namespaces open until told to stop, and reaps orphans as PID 1 must. The
// registry's registry.k8s.io/pause cannot be pulled here, so containerd's
// sandbox_image is this, built static and imported. Not product code.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
