// refruntime: the reference runtime library (libcni, from Debian's
// golang-github-appc-cni-dev) behind a tiny command line, so multinic's tests
// and benchmarks can run the real libcni side by side with multinic's runtime.
//
//	refruntime add|check|del NETWORK NETNS_PATH
//
// Environment: NETCONFPATH (config dir), CNI_PATH (plugin dirs),
// CNI_CACHE_DIR (libcni cache dir), CNI_CONTAINERID, CNI_IFNAME.
// A result is printed as JSON on stdout; an error on stderr with exit 1.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: refruntime add|check|del NETWORK NETNS_PATH")
		os.Exit(2)
	}
	verb, network, netns := os.Args[1], os.Args[2], os.Args[3]
	if err := run(verb, network, netns); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(verb, network, netns string) error {
	list, err := libcni.LoadConfList(os.Getenv("NETCONFPATH"), network)
	if err != nil {
		return err
	}
	cni := libcni.NewCNIConfigWithCacheDir(
		filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	rt := &libcni.RuntimeConf{
		ContainerID: os.Getenv("CNI_CONTAINERID"),
		NetNS:       netns,
		IfName:      os.Getenv("CNI_IFNAME"),
	}
	ctx := context.Background()
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		return result.Print()
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	}
	return fmt.Errorf("unknown verb %q", verb)
}
