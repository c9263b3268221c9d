// Compiled kernels of rlkernel-cext: sum trees and min trees over flat arrays.
//
// Built against the CPython C API and the buffer protocol only (no libtorch, no numpy
// headers), so one build serves every torch version. The Python wrapper
// (rlkernel_cext/trees.py) owns the tree storage as a numpy array and hands every
// argument over as a C-contiguous buffer.
//
// Layout: a tree of capacity C has P leaves, P the next power of two >= C, stored in a
// flat array of 2 * P elements. Node 1 is the root, node n has children 2n and 2n + 1,
// leaf i lives at P + i. Element 0 is unused. Leaves past the capacity keep the neutral
// value (0 for sums, +inf for minima) forever.
//
// Canonical rules, shared with the pure-torch implementation of the core, so that both
// give bit-identical results:
//   * a parent is recomputed from its children in the tree's dtype: left + right for a
//     sum tree (never by adding deltas), min(left, right) for a min tree;
//   * prefix-sum search descends from the root with the mass m in the tree's dtype:
//     at node n, if m < value(2n) go left, else m -= value(2n) and go right; at a leaf
//     the result is its index - P; a result past the last leaf holding a non-zero value
//     is clamped to that leaf (0 when every leaf is zero).
//
// The kernels themselves are in _tree_kernels.h; this file turns Python arguments into
// checked buffers. Every entry point validates its whole batch before writing anything
// and runs its kernel with the GIL released.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <cstring>

#include "_tree_kernels.h"

namespace {

using rlkernel_cext::find_kernel;
using rlkernel_cext::gather_kernel;
using rlkernel_cext::MinOp;
using rlkernel_cext::SumOp;
using rlkernel_cext::update_kernel;

// ---------------------------------------------------------------------------------
// Buffers
// ---------------------------------------------------------------------------------

enum class Kind { f32, f64, i64, unsupported };

const char *kind_name(Kind kind) {
    switch (kind) {
        case Kind::f32: return "float32";
        case Kind::f64: return "float64";
        case Kind::i64: return "int64";
        default: return "an unsupported element type";
    }
}

bool little_endian_host() {
    const std::uint16_t probe = 1;
    unsigned char first;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}

// Reads a struct-module format string ("d", "<f", "=q", ...) into a Kind.
Kind kind_of(const Py_buffer &view) {
    const char *fmt = view.format != nullptr ? view.format : "B";
    if (*fmt == '@' || *fmt == '=' || (*fmt == '<' && little_endian_host())) {
        ++fmt;
    }
    if (fmt[0] == '\0' || fmt[1] != '\0') {
        return Kind::unsupported;
    }
    switch (fmt[0]) {
        case 'f': return view.itemsize == 4 ? Kind::f32 : Kind::unsupported;
        case 'd': return view.itemsize == 8 ? Kind::f64 : Kind::unsupported;
        case 'l':
        case 'q': return view.itemsize == 8 ? Kind::i64 : Kind::unsupported;
        default: return Kind::unsupported;
    }
}

// A Py_buffer released when it goes out of scope.
class Buffer {
  public:
    Buffer() { std::memset(&view_, 0, sizeof(view_)); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    ~Buffer() {
        if (held_) {
            PyBuffer_Release(&view_);
        }
    }

    // Acquires a one-dimensional C-contiguous buffer; sets a Python error and returns
    // false when ``obj`` does not provide one.
    bool acquire(PyObject *obj, bool writable, const char *what) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
        if (writable) {
            flags |= PyBUF_WRITABLE;
        }
        if (PyObject_GetBuffer(obj, &view_, flags) != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s must be a%s C-contiguous buffer (a numpy array), got %.200s", what,
                         writable ? " writable" : "", Py_TYPE(obj)->tp_name);
            return false;
        }
        held_ = true;
        if (view_.ndim > 1) {
            PyErr_Format(PyExc_ValueError, "%s must be one-dimensional, got %d dimensions", what,
                         view_.ndim);
            return false;
        }
        kind_ = kind_of(view_);
        return true;
    }

    Kind kind() const { return kind_; }
    Py_ssize_t size() const { return view_.itemsize > 0 ? view_.len / view_.itemsize : 0; }
    template <typename T>
    T *data() const {
        return static_cast<T *>(view_.buf);
    }

  private:
    Py_buffer view_;
    bool held_ = false;
    Kind kind_ = Kind::unsupported;
};

bool expect_kind(const Buffer &buf, Kind want, const char *what) {
    if (buf.kind() != want) {
        PyErr_Format(PyExc_TypeError, "%s must hold %s elements, got %s", what, kind_name(want),
                     kind_name(buf.kind()));
        return false;
    }
    return true;
}

// Checks the tree storage: float32 or float64, 2 * P elements with P a power of two,
// and 1 <= capacity <= P. Sets a Python error and returns false otherwise.
bool check_tree(const Buffer &tree, Py_ssize_t capacity, Py_ssize_t *leaves) {
    if (tree.kind() != Kind::f32 && tree.kind() != Kind::f64) {
        PyErr_Format(PyExc_TypeError, "tree storage must hold float32 or float64 elements, got %s",
                     kind_name(tree.kind()));
        return false;
    }
    const Py_ssize_t n = tree.size();
    const Py_ssize_t half = n / 2;
    if (n < 2 || n % 2 != 0 || (half & (half - 1)) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "tree storage must have 2 * P elements with P a power of two, got %zd", n);
        return false;
    }
    if (capacity < 1 || capacity > half) {
        PyErr_Format(PyExc_ValueError, "capacity %zd does not fit a tree of %zd leaves", capacity,
                     half);
        return false;
    }
    *leaves = half;
    return true;
}

// Returns the position of the first index outside [0, capacity), or -1 if all are valid.
Py_ssize_t first_bad_index(const std::int64_t *index, Py_ssize_t k, Py_ssize_t capacity) {
    for (Py_ssize_t j = 0; j < k; ++j) {
        const std::int64_t i = index[j];
        if (i < 0 || i >= static_cast<std::int64_t>(capacity)) {
            return j;
        }
    }
    return -1;
}

void raise_bad_index(const std::int64_t *index, Py_ssize_t pos, Py_ssize_t capacity) {
    PyErr_Format(PyExc_IndexError,
                 "index %lld (at position %zd of the batch) is out of range for a tree of capacity "
                 "%zd: valid indices are 0 to %zd",
                 static_cast<long long>(index[pos]), pos, capacity, capacity - 1);
}

// ---------------------------------------------------------------------------------
// Python entry points
// ---------------------------------------------------------------------------------

// The index and value buffers of an update: int64 indices, values of the tree's kind,
// the same length (*k). False with a Python error set otherwise.
bool acquire_index_value(PyObject *index_obj, PyObject *value_obj, Kind kind, Buffer &index,
                         Buffer &value, Py_ssize_t *k) {
    if (!index.acquire(index_obj, false, "index") || !expect_kind(index, Kind::i64, "index") ||
        !value.acquire(value_obj, false, "value") || !expect_kind(value, kind, "value")) {
        return false;
    }
    *k = index.size();
    if (value.size() != *k) {
        PyErr_Format(PyExc_ValueError, "index and value must have the same length, got %zd and %zd",
                     *k, value.size());
        return false;
    }
    return true;
}

// Check the k indices against the capacity and, if all are valid, run kernel() -- both
// without the GIL; raise IndexError naming the first bad one otherwise (nothing written).
template <class Kernel>
PyObject *run_update(const std::int64_t *idx, Py_ssize_t k, Py_ssize_t capacity, Kernel kernel) {
    Py_ssize_t bad;
    Py_BEGIN_ALLOW_THREADS;
    bad = first_bad_index(idx, k, capacity);
    if (bad < 0) {
        kernel();
    }
    Py_END_ALLOW_THREADS;
    if (bad >= 0) {
        raise_bad_index(idx, bad, capacity);
        return nullptr;
    }
    Py_RETURN_NONE;
}

// update(tree, capacity, index, value): shared by sum_update and min_update.
template <template <typename> class Op>
PyObject *update_entry(PyObject *args) {
    PyObject *tree_obj, *index_obj, *value_obj;
    Py_ssize_t capacity, leaves, k;
    if (!PyArg_ParseTuple(args, "OnOO", &tree_obj, &capacity, &index_obj, &value_obj)) {
        return nullptr;
    }
    Buffer tree, index, value;
    if (!tree.acquire(tree_obj, true, "tree") || !check_tree(tree, capacity, &leaves) ||
        !acquire_index_value(index_obj, value_obj, tree.kind(), index, value, &k)) {
        return nullptr;
    }
    const std::int64_t *idx = index.data<std::int64_t>();
    return run_update(idx, k, capacity, [&] {
        if (tree.kind() == Kind::f32) {
            update_kernel<float, Op<float>>(tree.data<float>(), leaves, idx, value.data<float>(), k);
        } else {
            update_kernel<double, Op<double>>(tree.data<double>(), leaves, idx, value.data<double>(), k);
        }
    });
}

// pair_update(sum_tree, min_tree, capacity, index, value): sum_update of the first tree
// and min_update of the second with the same leaves, in one call (the prioritized
// sampler's two trees always get the same values).
PyObject *pair_update(PyObject *, PyObject *args) {
    PyObject *sum_obj, *min_obj, *index_obj, *value_obj;
    Py_ssize_t capacity, leaves, min_leaves, k;
    if (!PyArg_ParseTuple(args, "OOnOO", &sum_obj, &min_obj, &capacity, &index_obj, &value_obj)) {
        return nullptr;
    }
    Buffer sum, min, index, value;
    if (!sum.acquire(sum_obj, true, "sum tree") || !check_tree(sum, capacity, &leaves) ||
        !min.acquire(min_obj, true, "min tree") || !check_tree(min, capacity, &min_leaves) ||
        !expect_kind(min, sum.kind(), "min tree")) {
        return nullptr;
    }
    if (min_leaves != leaves) {
        PyErr_Format(PyExc_ValueError, "the sum tree has %zd leaves but the min tree %zd", leaves,
                     min_leaves);
        return nullptr;
    }
    if (!acquire_index_value(index_obj, value_obj, sum.kind(), index, value, &k)) {
        return nullptr;
    }
    const std::int64_t *idx = index.data<std::int64_t>();
    return run_update(idx, k, capacity, [&] {
        if (sum.kind() == Kind::f32) {
            update_kernel<float, SumOp<float>>(sum.data<float>(), leaves, idx, value.data<float>(), k);
            update_kernel<float, MinOp<float>>(min.data<float>(), leaves, idx, value.data<float>(), k);
        } else {
            update_kernel<double, SumOp<double>>(sum.data<double>(), leaves, idx, value.data<double>(), k);
            update_kernel<double, MinOp<double>>(min.data<double>(), leaves, idx, value.data<double>(), k);
        }
    });
}

PyObject *sum_update(PyObject *, PyObject *args) { return update_entry<SumOp>(args); }

PyObject *min_update(PyObject *, PyObject *args) { return update_entry<MinOp>(args); }

// gather(tree, capacity, index, out): out[j] = leaf[index[j]].
PyObject *gather(PyObject *, PyObject *args) {
    PyObject *tree_obj, *index_obj, *out_obj;
    Py_ssize_t capacity, leaves;
    if (!PyArg_ParseTuple(args, "OnOO", &tree_obj, &capacity, &index_obj, &out_obj)) {
        return nullptr;
    }
    Buffer tree, index, out;
    if (!tree.acquire(tree_obj, false, "tree") || !check_tree(tree, capacity, &leaves) ||
        !index.acquire(index_obj, false, "index") || !expect_kind(index, Kind::i64, "index") ||
        !out.acquire(out_obj, true, "out") || !expect_kind(out, tree.kind(), "out")) {
        return nullptr;
    }
    const Py_ssize_t k = index.size();
    if (out.size() != k) {
        PyErr_Format(PyExc_ValueError, "index and out must have the same length, got %zd and %zd", k,
                     out.size());
        return nullptr;
    }
    const std::int64_t *idx = index.data<std::int64_t>();
    Py_ssize_t bad;
    Py_BEGIN_ALLOW_THREADS;
    bad = first_bad_index(idx, k, capacity);
    if (bad < 0) {
        if (tree.kind() == Kind::f32) {
            gather_kernel<float>(tree.data<float>(), leaves, idx, out.data<float>(), k);
        } else {
            gather_kernel<double>(tree.data<double>(), leaves, idx, out.data<double>(), k);
        }
    }
    Py_END_ALLOW_THREADS;
    if (bad >= 0) {
        raise_bad_index(idx, bad, capacity);
        return nullptr;
    }
    Py_RETURN_NONE;
}

// find_prefixsum(tree, capacity, mass, out[, values]): the canonical descent for every
// mass; ``values``, when given, receives the value of each leaf found.
PyObject *find_prefixsum(PyObject *, PyObject *args) {
    PyObject *tree_obj, *mass_obj, *out_obj, *values_obj = Py_None;
    Py_ssize_t capacity, leaves;
    if (!PyArg_ParseTuple(args, "OnOO|O", &tree_obj, &capacity, &mass_obj, &out_obj, &values_obj)) {
        return nullptr;
    }
    Buffer tree, mass, out, values;
    if (!tree.acquire(tree_obj, false, "tree") || !check_tree(tree, capacity, &leaves) ||
        !mass.acquire(mass_obj, false, "mass") || !expect_kind(mass, tree.kind(), "mass") ||
        !out.acquire(out_obj, true, "out") || !expect_kind(out, Kind::i64, "out")) {
        return nullptr;
    }
    const bool with_values = values_obj != Py_None;
    if (with_values && (!values.acquire(values_obj, true, "values") ||
                        !expect_kind(values, tree.kind(), "values"))) {
        return nullptr;
    }
    const Py_ssize_t k = mass.size();
    if (out.size() != k) {
        PyErr_Format(PyExc_ValueError, "mass and out must have the same length, got %zd and %zd", k,
                     out.size());
        return nullptr;
    }
    if (with_values && values.size() != k) {
        PyErr_Format(PyExc_ValueError, "mass and values must have the same length, got %zd and %zd",
                     k, values.size());
        return nullptr;
    }
    Py_BEGIN_ALLOW_THREADS;
    if (tree.kind() == Kind::f32) {
        find_kernel<float>(tree.data<float>(), leaves, mass.data<float>(), out.data<std::int64_t>(),
                           with_values ? values.data<float>() : nullptr, k);
    } else {
        find_kernel<double>(tree.data<double>(), leaves, mass.data<double>(),
                            out.data<std::int64_t>(), with_values ? values.data<double>() : nullptr,
                            k);
    }
    Py_END_ALLOW_THREADS;
    Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"sum_update", sum_update, METH_VARARGS,
     "sum_update(tree, capacity, index, value) -> None\n\n"
     "Set leaves index[j] to value[j] (the last duplicate wins) and recompute their\n"
     "ancestors as left + right. Raises IndexError, leaving the tree untouched, if an\n"
     "index is outside [0, capacity)."},
    {"min_update", min_update, METH_VARARGS,
     "min_update(tree, capacity, index, value) -> None\n\n"
     "Like sum_update, with parents recomputed as min(left, right)."},
    {"pair_update", pair_update, METH_VARARGS,
     "pair_update(sum_tree, min_tree, capacity, index, value) -> None\n\n"
     "sum_update(sum_tree, ...) and min_update(min_tree, ...) with the same leaves, in one\n"
     "call; raises IndexError, leaving both trees untouched, if an index is out of range."},
    {"gather", gather, METH_VARARGS,
     "gather(tree, capacity, index, out) -> None\n\n"
     "out[j] = leaf[index[j]]; raises IndexError if an index is outside [0, capacity)."},
    {"find_prefixsum", find_prefixsum, METH_VARARGS,
     "find_prefixsum(tree, capacity, mass, out, values=None) -> None\n\n"
     "out[j] = the leaf reached by the canonical descent for mass[j], clamped to the last\n"
     "non-zero leaf; values[j] (if given) = that leaf's value. mass and values have the\n"
     "tree's dtype."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT,
    "rlkernel_cext._trees",
    "Sum-tree and min-tree kernels over flat float32/float64 buffers (see rlkernel_cext.trees).",
    0,
    kMethods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__trees(void) { return PyModule_Create(&kModule); }
