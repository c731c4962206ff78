package route

import (
	"strings"

	"github.com/wasmesh/wasmesh/header"
)

// routeIndex narrows the routes a path can match without changing Envoy's
// first-match order. Every route has a literal key that any path it
// matches must start with: its prefix or path when matched case-sensitively,
// the literal prefix of its regex, else "". The keys live in a radix tree;
// walking the request path down the tree collects exactly the routes whose
// key prefixes the path, in per-node lists sorted by route position, and
// those are then tried in position order.
//
// Routes with host keys (hostindex.go) live in one tree per key instead of
// the shared one; a lookup walks the shared tree and the tree of the
// request's host part.
type routeIndex struct {
	root  *indexNode
	hosts map[string]*indexNode
}

type indexNode struct {
	label    string  // edge from the parent
	routes   []int32 // positions of the routes whose key ends here, ascending
	children []*indexNode
}

// minIndexedRoutes is the virtual host size from which an index pays off.
const minIndexedRoutes = 16

// maxIndexLists bounds the nodes a lookup collects without allocating; a
// deeper path falls back to the linear scan.
const maxIndexLists = 32

func routeKey(r *Route) string {
	switch r.pathKind {
	case pathPrefix, pathExact, pathSeparated:
		if r.caseSensitive {
			return r.pathValue
		}
	case pathRegex:
		return r.literalPrefix
	}
	return ""
}

func buildIndex(routes []*Route) *routeIndex {
	if len(routes) < minIndexedRoutes {
		return nil
	}
	ix := &routeIndex{root: &indexNode{}}
	for i, r := range routes {
		if len(r.hostKeys) == 0 {
			ix.root.insert(routeKey(r), int32(i))
			continue
		}
		if ix.hosts == nil {
			ix.hosts = map[string]*indexNode{}
		}
		for _, k := range r.hostKeys {
			n := ix.hosts[k]
			if n == nil {
				n = &indexNode{}
				ix.hosts[k] = n
			}
			n.insert(routeKey(r), int32(i))
		}
	}
	return ix
}

func (n *indexNode) insert(key string, pos int32) {
	for {
		if key == "" {
			n.routes = append(n.routes, pos)
			return
		}
		var next *indexNode
		for _, c := range n.children {
			if c.label[0] == key[0] {
				next = c
				break
			}
		}
		if next == nil {
			n.children = append(n.children, &indexNode{label: key, routes: []int32{pos}})
			return
		}
		common := commonPrefix(next.label, key)
		if common < len(next.label) {
			// Split the edge at the common prefix.
			split := &indexNode{label: next.label[:common], children: []*indexNode{next}}
			next.label = next.label[common:]
			for j, c := range n.children {
				if c == next {
					n.children[j] = split
				}
			}
			next = split
		}
		n, key = next, key[common:]
	}
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// candidates collects the route lists along p into lists, from the
// shared tree and the tree of the request's host; ok is false when there
// are more than fit or the host cannot be keyed (then every route is a
// candidate).
func (ix *routeIndex) candidates(h *header.Map, p string, lists *[maxIndexLists][]int32) (n int, ok bool) {
	n, ok = walk(ix.root, p, lists, 0)
	if !ok || ix.hosts == nil {
		return n, ok
	}
	var buf [256]byte
	key, present, ok := hostKey(h, buf[:])
	if !ok {
		return n, false
	}
	if !present {
		return n, true // keyed routes need an :authority
	}
	if node := ix.hosts[string(key)]; node != nil {
		return walk(node, p, lists, n)
	}
	return n, true
}

func walk(node *indexNode, p string, lists *[maxIndexLists][]int32, n int) (int, bool) {
	for {
		if len(node.routes) > 0 {
			if n == maxIndexLists {
				return n, false
			}
			lists[n] = node.routes
			n++
		}
		if p == "" {
			return n, true
		}
		var next *indexNode
		for _, c := range node.children {
			if c.label[0] == p[0] {
				next = c
				break
			}
		}
		if next == nil || !strings.HasPrefix(p, next.label) {
			return n, true
		}
		p = p[len(next.label):]
		node = next
	}
}
