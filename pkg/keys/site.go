package keys

// FNV-1a 64-bit parameters (the same as hash/fnv.New64a).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// SiteID returns the 64-bit site id of a site name: FNV-1a 64 of its bytes,
// as given (normalize case before calling). It is stable across processes
// and releases, unlike hash/maphash, because it is stored in every key:
// changing it orphans all keys in Redis. It does not allocate.
func SiteID(name string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime64
	}
	return h
}
