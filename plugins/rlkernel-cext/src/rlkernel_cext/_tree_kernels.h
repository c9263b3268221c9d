// The tree kernels of rlkernel-cext: plain C++17 over flat arrays, no Python.
//
// Included by _trees.cpp, which checks every argument (buffer kinds and sizes, indices
// in range) before calling these and runs them with the GIL released. The layout and
// the canonical rules are described at the top of _trees.cpp.

#ifndef RLKERNEL_CEXT_TREE_KERNELS_H
#define RLKERNEL_CEXT_TREE_KERNELS_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__) || defined(__clang__)
#define RLK_PREFETCH(address) __builtin_prefetch(address)
#else
#define RLK_PREFETCH(address) ((void)(address))
#endif

namespace rlkernel_cext {

template <typename T>
struct SumOp {
    static T combine(T left, T right) { return left + right; }
};

template <typename T>
struct MinOp {
    static T combine(T left, T right) { return right < left ? right : left; }
};

// True when ``a`` and ``b`` are the same bits (unlike ==, tells -0 from +0).
template <typename T>
bool same_bits(T a, T b) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Writes the leaves in batch order (so the last duplicate wins), then brings every
// ancestor of a written leaf back to combine(left child, right child).
//
// Once every node equals the combination of its children, the whole tree is a function
// of its leaves alone; so any order of recomputing gives the same bits as walking up
// from each leaf in turn. This one is fast:
//   * the walks up run in blocks of kUpdateBlock leaves, one level at a time for the
//     whole block, so that the loads of a level are independent of each other (they
//     overlap in memory) and none waits for a store just made;
//   * a node reached by the previous walk of the block at the same level (siblings, or a
//     run of neighbouring leaves as a round-robin writer produces) is recomputed once;
//   * a walk stops at a node whose recomputed value has the same bits as before: nothing
//     above it can change because of it (in a min tree most walks stop after a few
//     levels). If another leaf below that node's parent did change, that leaf's own walk
//     goes on to the parent.
constexpr std::ptrdiff_t kUpdateBlock = 64;

template <typename T, typename Op>
void update_kernel(T *tree, std::ptrdiff_t leaves, const std::int64_t *index, const T *value,
                   std::ptrdiff_t k) {
    for (std::ptrdiff_t j = 0; j < k; ++j) {
        tree[leaves + index[j]] = value[j];
    }
    if (leaves < 2) {
        return;  // a one-leaf tree: the leaf is the root
    }
    std::ptrdiff_t node[kUpdateBlock];
    for (std::ptrdiff_t start = 0; start < k; start += kUpdateBlock) {
        const std::ptrdiff_t width = k - start < kUpdateBlock ? k - start : kUpdateBlock;
        std::ptrdiff_t count = 0;
        for (std::ptrdiff_t b = 0; b < width; ++b) {
            const std::ptrdiff_t parent = (leaves + index[start + b]) >> 1;
            if (count == 0 || node[count - 1] != parent) {
                node[count++] = parent;
            }
        }
        while (count > 0 && node[0] > 0) {  // every node of the block is at the same depth
            std::ptrdiff_t next = 0;
            for (std::ptrdiff_t b = 0; b < count; ++b) {
                const std::ptrdiff_t n = node[b];
                const T combined = Op::combine(tree[2 * n], tree[2 * n + 1]);
                if (same_bits(combined, tree[n])) {
                    continue;  // unchanged: its ancestors need nothing from this walk
                }
                tree[n] = combined;
                const std::ptrdiff_t parent = n >> 1;
                if (next == 0 || node[next - 1] != parent) {
                    node[next++] = parent;
                }
            }
            count = next;
        }
    }
}

template <typename T>
void gather_kernel(const T *tree, std::ptrdiff_t leaves, const std::int64_t *index, T *out,
                   std::ptrdiff_t k) {
    for (std::ptrdiff_t j = 0; j < k; ++j) {
        out[j] = tree[leaves + index[j]];
    }
}

// The last leaf holding a non-zero value (leaves are non-negative, so a node is
// non-zero exactly when one of its leaves is); 0 when every leaf is zero.
template <typename T>
std::ptrdiff_t last_nonzero_leaf(const T *tree, std::ptrdiff_t leaves) {
    std::ptrdiff_t node = 1;
    while (node < leaves) {
        node = tree[2 * node + 1] != T(0) ? 2 * node + 1 : 2 * node;
    }
    return tree[node] != T(0) ? node - leaves : 0;
}

// ``x`` if ``keep``, else +0 (a bit mask: compilers turn ``keep ? x : 0`` into a branch).
template <typename T>
T keep_if(T x, bool keep) {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    static_assert(sizeof(Bits) == sizeof(T), "float32 or float64 only");
    Bits bits;
    std::memcpy(&bits, &x, sizeof(T));
    bits &= Bits(0) - static_cast<Bits>(keep);
    std::memcpy(&x, &bits, sizeof(T));
    return x;
}

// The canonical descent (see the top of this file). Masses are processed in blocks that
// walk the levels in lock step, so the memory loads of a block overlap; each step also
// prefetches the four grandchildren of the node (one cache line), which hold the values
// the next step reads whichever way it goes. ``values`` (may be null) receives the value
// of each leaf found.
constexpr std::ptrdiff_t kFindBlock = 64;

template <typename T>
void find_kernel(const T *tree, std::ptrdiff_t leaves, const T *mass, std::int64_t *out, T *values,
                 std::ptrdiff_t k) {
    const std::ptrdiff_t last = last_nonzero_leaf(tree, leaves);
    for (std::ptrdiff_t start = 0; start < k; start += kFindBlock) {
        const std::ptrdiff_t width = k - start < kFindBlock ? k - start : kFindBlock;
        std::ptrdiff_t node[kFindBlock];
        T rest[kFindBlock];
        for (std::ptrdiff_t b = 0; b < width; ++b) {
            node[b] = 1;
            rest[b] = mass[start + b];
        }
        for (std::ptrdiff_t span = leaves; span > 1; span >>= 1) {
            if (span >= 4) {  // the grandchildren exist
                for (std::ptrdiff_t b = 0; b < width; ++b) {
                    RLK_PREFETCH(tree + 4 * node[b]);
                }
            }
            for (std::ptrdiff_t b = 0; b < width; ++b) {
                // Without branches (the direction is a coin flip, a branch would be
                // mispredicted half the time); subtracting 0 leaves the mass unchanged.
                const T left = tree[2 * node[b]];
                const bool right = !(rest[b] < left);
                rest[b] -= keep_if(left, right);
                node[b] = 2 * node[b] + static_cast<std::ptrdiff_t>(right);
            }
        }
        for (std::ptrdiff_t b = 0; b < width; ++b) {
            const std::ptrdiff_t found = node[b] - leaves;
            const std::ptrdiff_t clamped = found > last ? last : found;
            out[start + b] = static_cast<std::int64_t>(clamped);
            if (values != nullptr) {
                values[start + b] = tree[leaves + clamped];
            }
        }
    }
}

}  // namespace rlkernel_cext

#endif  // RLKERNEL_CEXT_TREE_KERNELS_H
