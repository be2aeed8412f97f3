// refruntime: the reference runtime library (libcni, at the version pinned in
// ../go.mod) behind a tiny command line, so multinic's tests and benchmarks can
// run the real libcni side by side with multinic's runtime.
//
//	refruntime add|check|del NETWORK NETNS_PATH
//	refruntime gc NETWORK [CONTAINERID/IFNAME ...]
//	refruntime status NETWORK
//
// gc's arguments are the valid attachments (libcni's GCArgs.ValidAttachments):
// every cached attachment of NETWORK not listed is DELeted, then every plugin
// gets GC with the list as "cni.dev/valid-attachments". No arguments means an
// empty list (sent as [], so everything cached is stale), as a runtime with no
// pods left would send; libcni's nil list (no key at all) is not reachable.
//
// Environment: NETCONFPATH (config dir), CNI_PATH (plugin dirs),
// CNI_CACHE_DIR (libcni cache dir), CNI_CONTAINERID, CNI_IFNAME (add/check/del).
// A result is printed as JSON on stdout. An error goes to stderr with exit 1;
// when it is a plugin's CNI error object, that object is also printed on stdout,
// so callers can read its code (STATUS's 50/51, for example).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

const usage = `usage: refruntime add|check|del NETWORK NETNS_PATH
       refruntime gc NETWORK [CONTAINERID/IFNAME ...]
       refruntime status NETWORK`

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	verb, network, rest := os.Args[1], os.Args[2], os.Args[3:]
	err := run(verb, network, rest)
	var usageErr usageError
	if errors.As(err, &usageErr) {
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			out, _ := json.Marshal(cniErr)
			fmt.Println(string(out))
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func run(verb, network string, rest []string) error {
	list, err := libcni.LoadNetworkConf(os.Getenv("NETCONFPATH"), network)
	if err != nil {
		return err
	}
	cni := libcni.NewCNIConfigWithCacheDir(
		filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()
	switch verb {
	case "add", "check", "del":
		if len(rest) != 1 {
			return usageError(verb + " takes NETWORK NETNS_PATH")
		}
		rt := &libcni.RuntimeConf{
			ContainerID: os.Getenv("CNI_CONTAINERID"),
			NetNS:       rest[0],
			IfName:      os.Getenv("CNI_IFNAME"),
		}
		switch verb {
		case "add":
			result, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				return err
			}
			return result.Print()
		case "check":
			return cni.CheckNetworkList(ctx, list, rt)
		default:
			return cni.DelNetworkList(ctx, list, rt)
		}
	case "gc":
		valid, err := attachments(rest)
		if err != nil {
			return err
		}
		return cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
	case "status":
		if len(rest) != 0 {
			return usageError("status takes only NETWORK")
		}
		return cni.GetStatusNetworkList(ctx, list)
	}
	return usageError(fmt.Sprintf("unknown verb %q", verb))
}

// attachments parses CONTAINERID/IFNAME arguments; never nil, so the plugins get [].
func attachments(args []string) ([]types.GCAttachment, error) {
	valid := []types.GCAttachment{}
	for _, arg := range args {
		id, ifname, ok := strings.Cut(arg, "/")
		if !ok || id == "" || ifname == "" {
			return nil, usageError(fmt.Sprintf("gc: %q is not CONTAINERID/IFNAME", arg))
		}
		valid = append(valid, types.GCAttachment{ContainerID: id, IfName: ifname})
	}
	return valid, nil
}
