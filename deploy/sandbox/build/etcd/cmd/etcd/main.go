// Command etcd is the etcd server, built from the published go.etcd.io/etcd/server/v3
// module. It does what etcd's own main.go does: hand the arguments to etcdmain.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
