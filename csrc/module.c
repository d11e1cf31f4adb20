/* module.c — the CPython/NumPy binding of the tfm core, `tfm._tfmcore`.
 *
 * The only file that includes Python.h or NumPy headers. It checks every argument (dtype, shape,
 * contiguity, value ranges) with the parameter named in the error, converts arrays to the exact
 * C types the core expects (copying when needed, never reading out of bounds), allocates outputs
 * before compute, releases the GIL around compute, and maps tfm_status to Python exceptions.
 *
 * Conventions (numpy's compiled_base.c style): per-module state holds the heap types (multi-phase
 * init); every PyArrayObject* starts NULL and one `fail:` label releases them.
 *
 * Objects: Model (weights of one decoder or encoder), KVCache (past keys/values of one decoder).
 * Encoders share Model: loading (set_param, param_shape, missing) is the same code for every
 * architecture; only the call differs — `forward` (decoders, with a cache) vs `encode` (encoders,
 * with heads) — so one type with two methods beats two types duplicating the loading half.
 * Thread safety: a Model is immutable once loading is done; any number of threads may run
 * forward on it at once. A KVCache is mutable and refuses a second concurrent user.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <float.h>
#include <string.h>

#include "tfm.h"

typedef struct {
    PyTypeObject *model_type;
    PyTypeObject *cache_type;
} module_state;

static module_state *get_state(PyObject *module) { return (module_state *)PyModule_GetState(module); }

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* Raises the Python exception matching a core status; `what` names the operation. */
static PyObject *raise_status(tfm_status st, const char *what) {
    switch (st) {
    case TFM_E_NOMEM: return PyErr_NoMemory();
    case TFM_E_RANGE: PyErr_Format(PyExc_IndexError, "%s: index out of range", what); break;
    case TFM_E_STATE: PyErr_Format(PyExc_RuntimeError, "%s: invalid state", what); break;
    default: PyErr_Format(PyExc_ValueError, "%s: %s", what, tfm_status_str(st)); break;
    }
    return NULL;
}

/* A C-contiguous float32 array from any array-like of real numbers (copied if needed). */
static PyArrayObject *as_f32(PyObject *obj, const char *name) {
    if (!obj) return NULL;
    PyArrayObject *tmp = (PyArrayObject *)PyArray_FROM_OF(obj, NPY_ARRAY_IN_ARRAY);
    if (!tmp) return NULL;
    if (!PyArray_ISFLOAT(tmp) && !PyArray_ISINTEGER(tmp)) {
        PyErr_Format(PyExc_TypeError, "%s must be an array of real numbers", name);
        Py_DECREF(tmp);
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)tmp, NPY_FLOAT32,
                                                           NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(tmp);
    return arr;
}

/* A C-contiguous int32 array from an integer array; values must lie in [lo, hi).
 * Floats are refused (a float token id is a caller bug, not something to round). */
static PyArrayObject *as_i32(PyObject *obj, const char *name, int64_t lo, int64_t hi) {
    PyArrayObject *tmp = (PyArrayObject *)PyArray_FROM_OF(obj, NPY_ARRAY_IN_ARRAY);
    if (!tmp) return NULL;
    if (!PyArray_ISINTEGER(tmp) && !PyArray_ISBOOL(tmp)) {
        PyErr_Format(PyExc_TypeError, "%s must be an integer array, got dtype %R", name,
                     (PyObject *)PyArray_DESCR(tmp));
        Py_DECREF(tmp);
        return NULL;
    }
    PyArrayObject *wide = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)tmp, NPY_INT64,
                                                            NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    int is_unsigned = PyArray_ISUNSIGNED(tmp);
    Py_DECREF(tmp);
    if (!wide) return NULL;
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(wide), PyArray_DIMS(wide), NPY_INT32);
    if (!out) {
        Py_DECREF(wide);
        return NULL;
    }
    const int64_t *src = (const int64_t *)PyArray_DATA(wide);
    int32_t *dst = (int32_t *)PyArray_DATA(out);
    npy_intp n = PyArray_SIZE(wide);
    for (npy_intp i = 0; i < n; i++) {
        /* uint64 values above INT64_MAX arrive negative from the cast: still out of range */
        if (src[i] < lo || src[i] >= hi || (is_unsigned && src[i] < 0)) {
            PyErr_Format(PyExc_ValueError, "%s contains %lld at flat index %zd, outside the valid range [%lld, %lld)",
                         name, (long long)src[i], (Py_ssize_t)i, (long long)lo, (long long)hi);
            Py_DECREF(wide);
            Py_DECREF(out);
            return NULL;
        }
        dst[i] = (int32_t)src[i];
    }
    Py_DECREF(wide);
    return out;
}

static int parse_dtype(const char *s, tfm_dtype *out) {
    if (!strcmp(s, "f32") || !strcmp(s, "float32")) *out = TFM_F32;
    else if (!strcmp(s, "f16") || !strcmp(s, "float16")) *out = TFM_F16;
    else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *out = TFM_BF16;
    else {
        PyErr_Format(PyExc_ValueError, "unknown dtype %s (expected f32, f16 or bf16)", s);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Model
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    tfm_model model;
    int initialised;
    Py_ssize_t active; /* forward calls in flight (GIL released); set_param waits for none */
} ModelObject;

typedef struct {
    PyObject_HEAD
    tfm_kv_cache cache;
    PyObject *owner; /* the ModelObject it belongs to (kept alive) */
    int busy;        /* a forward call is using it */
} CacheObject;

static int Model_init(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"arch", "n_layer", "n_head", "hidden", "inner", "vocab", "n_positions", "act",
                             "ln_eps", "scale_attn_weights", "scale_attn_by_inverse_layer_idx",
                             "tie_word_embeddings", "window_size", "layer_is_local",
                             /* encoder section (tfm_config) */
                             "embedding_size", "type_vocab_size", "pad_token_id", "layer_map", "hidden_every",
                             "pooler_act", "n_seq_labels", "mlm_size", "mlm_act", "n_tok_labels", "tok_act", NULL};
    tfm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    PyObject *local = Py_None, *map_o = Py_None;
    cfg.scale_attn_weights = 1;
    cfg.tie_word_embeddings = 1;
    cfg.pooler_act = -1;
    cfg.tok_act = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiiiiiii|fpppiO$iiiOiiiiiii", kwlist, &cfg.arch, &cfg.n_layer,
                                     &cfg.n_head, &cfg.hidden, &cfg.inner, &cfg.vocab, &cfg.n_positions, &cfg.act,
                                     &cfg.ln_eps, &cfg.scale_attn_weights, &cfg.scale_attn_by_inverse_layer_idx,
                                     &cfg.tie_word_embeddings, &cfg.window_size, &local, &cfg.embedding_size,
                                     &cfg.type_vocab_size, &cfg.pad_token_id, &map_o, &cfg.hidden_every,
                                     &cfg.pooler_act, &cfg.n_seq_labels, &cfg.mlm_size, &cfg.mlm_act,
                                     &cfg.n_tok_labels, &cfg.tok_act))
        return -1;
    if (self->initialised) {
        PyErr_SetString(PyExc_RuntimeError, "Model is already initialised");
        return -1;
    }
    PyArrayObject *loc = NULL, *map = NULL;
    if (map_o != Py_None) {
        if (!(map = as_i32(map_o, "layer_map", 0, cfg.n_layer))) return -1;
        if (PyArray_NDIM(map) != 1 || PyArray_SIZE(map) < 1) {
            PyErr_SetString(PyExc_ValueError, "layer_map must be a non-empty 1-D array of block indices");
            Py_DECREF(map);
            return -1;
        }
        cfg.n_apply = (int32_t)PyArray_SIZE(map);
        cfg.layer_map = (const int32_t *)PyArray_DATA(map);
    }
    if (local != Py_None) {
        loc = as_i32(local, "layer_is_local", 0, 2);
        if (!loc) {
            Py_XDECREF(map);
            return -1;
        }
        if (PyArray_SIZE(loc) != cfg.n_layer) {
            PyErr_Format(PyExc_ValueError, "layer_is_local has %zd entries, expected n_layer = %d",
                         (Py_ssize_t)PyArray_SIZE(loc), cfg.n_layer);
            Py_DECREF(loc);
            Py_XDECREF(map);
            return -1;
        }
        cfg.layer_is_local = (const int32_t *)PyArray_DATA(loc);
    }
    tfm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tfm_model_init(&self->model, &cfg);
    Py_END_ALLOW_THREADS
    Py_XDECREF(loc);
    Py_XDECREF(map);
    if (st == TFM_E_ARG) {
        PyErr_SetString(PyExc_ValueError,
                        "invalid model configuration (sizes must be positive, hidden divisible by n_head, "
                        "activation and architecture codes known; encoders: heads consistent, a tied MLM "
                        "decoder as wide as the embeddings, layer_map inside [0, n_layer))");
        return -1;
    }
    if (st != TFM_OK) {
        raise_status(st, "Model");
        return -1;
    }
    self->initialised = 1;
    return 0;
}

static void Model_dealloc(ModelObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (self->initialised) tfm_model_free(&self->model);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int model_ready(ModelObject *self) {
    if (!self->initialised) {
        PyErr_SetString(PyExc_RuntimeError, "Model is not initialised");
        return 0;
    }
    return 1;
}

static PyObject *Model_param_shape(ModelObject *self, PyObject *args) {
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot) || !model_ready(self)) return NULL;
    int32_t ndim;
    int64_t shape[2];
    if (slot < 0 || slot >= TFM_P_COUNT || tfm_model_param_shape(&self->model, (tfm_param)slot, &ndim, shape) != TFM_OK)
        Py_RETURN_NONE; /* slot not used by this architecture */
    if (ndim == 1) return Py_BuildValue("(L)", (long long)shape[0]);
    return Py_BuildValue("(LL)", (long long)shape[0], (long long)shape[1]);
}

/* set_param(slot, layer, array, dtype="f32", layout=0). bf16 data comes as a uint16 array. */
static PyObject *Model_set_param(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"slot", "layer", "array", "dtype", "layout", NULL};
    int slot, layer, layout = 0;
    PyObject *obj;
    const char *dts = "f32";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiO|si", kwlist, &slot, &layer, &obj, &dts, &layout) ||
        !model_ready(self))
        return NULL;
    tfm_dtype dt;
    if (parse_dtype(dts, &dt) < 0) return NULL;
    if (self->active) {
        PyErr_SetString(PyExc_RuntimeError, "cannot change weights while a forward pass is running");
        return NULL;
    }
    int want = dt == TFM_F32 ? NPY_FLOAT32 : (dt == TFM_F16 ? NPY_FLOAT16 : NPY_UINT16);
    PyArrayObject *arr = (PyArrayObject *)PyArray_FROM_OF(obj, NPY_ARRAY_IN_ARRAY);
    if (!arr) return NULL;
    if (PyArray_TYPE(arr) != want) {
        PyErr_Format(PyExc_TypeError, "set_param: array dtype %R does not match dtype=%s", (PyObject *)PyArray_DESCR(arr),
                     dts);
        Py_DECREF(arr);
        return NULL;
    }
    if (PyArray_NDIM(arr) < 1 || PyArray_NDIM(arr) > 2) {
        PyErr_SetString(PyExc_ValueError, "set_param: array must be 1-D or 2-D");
        Py_DECREF(arr);
        return NULL;
    }
    int64_t shape[2] = {PyArray_DIM(arr, 0), PyArray_NDIM(arr) == 2 ? PyArray_DIM(arr, 1) : 0};
    tfm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tfm_model_set_param(&self->model, (tfm_param)slot, layer, PyArray_DATA(arr), dt, PyArray_NDIM(arr), shape,
                             layout);
    Py_END_ALLOW_THREADS
    Py_DECREF(arr);
    if (st == TFM_E_SHAPE) {
        PyErr_SetString(PyExc_ValueError, "set_param: shape does not match the configuration");
        return NULL;
    }
    if (st != TFM_OK) return raise_status(st, "set_param");
    Py_RETURN_NONE;
}

static PyObject *Model_missing(ModelObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!model_ready(self)) return NULL;
    tfm_param p;
    int32_t layer;
    if (tfm_model_check_loaded(&self->model, &p, &layer) == TFM_OK) Py_RETURN_NONE;
    return Py_BuildValue("(ii)", (int)p, (int)layer);
}

static PyObject *new_cache(PyTypeObject *cache_type, ModelObject *model, int64_t batch, int64_t capacity);

/* forward(input_ids, attention_mask=None, position_ids=None, token_type_ids=None, cache=None,
 *         logits="all"|"last"|"none", hidden_states=False, attentions=False, last_hidden=False)
 * Returns a dict with the requested outputs. */
static PyObject *Model_forward(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"input_ids", "attention_mask", "position_ids", "token_type_ids", "cache",
                             "logits", "hidden_states", "attentions", "last_hidden", NULL};
    PyObject *ids_o, *mask_o = Py_None, *pos_o = Py_None, *tt_o = Py_None, *cache_o = Py_None;
    const char *logits_s = "all";
    int want_hs = 0, want_attn = 0, want_last = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOOsppp", kwlist, &ids_o, &mask_o, &pos_o, &tt_o, &cache_o,
                                     &logits_s, &want_hs, &want_attn, &want_last) ||
        !model_ready(self))
        return NULL;
    const tfm_config *cfg = &self->model.cfg;
    if (tfm_arch_is_encoder(cfg->arch)) {
        PyErr_SetString(PyExc_TypeError, "forward() runs decoders; this model is an encoder: use encode()");
        return NULL;
    }
    PyArrayObject *ids = NULL, *mask = NULL, *pos = NULL, *tt = NULL;
    PyArrayObject *logits = NULL, *hs = NULL, *attn = NULL, *last = NULL;
    PyObject *result = NULL;
    CacheObject *cache = NULL;
    tfm_workspace ws;
    memset(&ws, 0, sizeof ws);
    int mode;
    if (!strcmp(logits_s, "all")) mode = TFM_LOGITS_ALL;
    else if (!strcmp(logits_s, "last")) mode = TFM_LOGITS_LAST;
    else if (!strcmp(logits_s, "none")) mode = TFM_LOGITS_NONE;
    else {
        PyErr_SetString(PyExc_ValueError, "logits must be 'all', 'last' or 'none'");
        return NULL;
    }
    if (!(ids = as_i32(ids_o, "input_ids", 0, cfg->vocab))) goto fail;
    if (PyArray_NDIM(ids) != 2 || PyArray_DIM(ids, 0) < 1 || PyArray_DIM(ids, 1) < 1) {
        PyErr_SetString(PyExc_ValueError, "input_ids must be a non-empty 2-D array [batch, seq]");
        goto fail;
    }
    const int64_t B = PyArray_DIM(ids, 0), T = PyArray_DIM(ids, 1);
    if (cache_o != Py_None) {
        PyObject *module = PyType_GetModule(Py_TYPE(self));
        if (!module) goto fail;
        if (!PyObject_TypeCheck(cache_o, get_state(module)->cache_type)) {
            PyErr_SetString(PyExc_TypeError, "past_key_values must be a KVCache returned by this library");
            goto fail;
        }
        cache = (CacheObject *)cache_o;
        if (cache->cache.model_uid != self->model.uid) {
            PyErr_SetString(PyExc_ValueError, "past_key_values belong to another model");
            cache = NULL;
            goto fail;
        }
        if (cache->busy) {
            PyErr_SetString(PyExc_RuntimeError, "this KVCache is in use by another thread");
            cache = NULL;
            goto fail;
        }
        if (cache->cache.batch != B) {
            PyErr_Format(PyExc_ValueError, "past_key_values hold %lld rows but input_ids has batch %lld",
                         (long long)cache->cache.batch, (long long)B);
            cache = NULL;
            goto fail;
        }
    }
    const int64_t P = cache ? cache->cache.length : 0, S = P + T;
    if (S > cfg->n_positions && pos_o == Py_None) {
        PyErr_Format(PyExc_ValueError, "sequence length %lld (%lld cached + %lld new) exceeds the model's maximum of %d positions",
                     (long long)S, (long long)P, (long long)T, cfg->n_positions);
        cache = NULL;
        goto fail;
    }
    if (mask_o != Py_None) {
        if (!(mask = as_i32(mask_o, "attention_mask", 0, 2))) goto fail;
        if (PyArray_NDIM(mask) != 2 || PyArray_DIM(mask, 0) != B || PyArray_DIM(mask, 1) != S) {
            PyErr_Format(PyExc_ValueError, "attention_mask must have shape (%lld, %lld) (batch, cached + new positions)",
                         (long long)B, (long long)S);
            goto fail;
        }
    }
    if (pos_o != Py_None) {
        if (!(pos = as_i32(pos_o, "position_ids", 0, cfg->n_positions))) goto fail;
        if (PyArray_NDIM(pos) != 2 || PyArray_DIM(pos, 0) != B || PyArray_DIM(pos, 1) != T) {
            PyErr_Format(PyExc_ValueError, "position_ids must have shape (%lld, %lld)", (long long)B, (long long)T);
            goto fail;
        }
    }
    if (tt_o != Py_None) {
        if (!(tt = as_i32(tt_o, "token_type_ids", 0, cfg->vocab))) goto fail;
        if (PyArray_NDIM(tt) != 2 || PyArray_DIM(tt, 0) != B || PyArray_DIM(tt, 1) != T) {
            PyErr_Format(PyExc_ValueError, "token_type_ids must have shape (%lld, %lld)", (long long)B, (long long)T);
            goto fail;
        }
    }
    /* outputs, allocated before compute */
    const int64_t C = cfg->hidden, L = cfg->n_layer, NH = cfg->n_head, V = cfg->vocab;
    if (mode == TFM_LOGITS_ALL) {
        npy_intp d[3] = {B, T, V};
        if (!(logits = (PyArrayObject *)PyArray_SimpleNew(3, d, NPY_FLOAT32))) goto fail;
    } else if (mode == TFM_LOGITS_LAST) {
        npy_intp d[2] = {B, V};
        if (!(logits = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_FLOAT32))) goto fail;
    }
    if (want_hs) {
        npy_intp d[4] = {L + 1, B, T, C};
        if (!(hs = (PyArrayObject *)PyArray_SimpleNew(4, d, NPY_FLOAT32))) goto fail;
    }
    if (want_attn) {
        npy_intp d[5] = {L, B, NH, T, S};
        if (!(attn = (PyArrayObject *)PyArray_SimpleNew(5, d, NPY_FLOAT32))) goto fail;
    }
    if (want_last) {
        npy_intp d[3] = {B, T, C};
        if (!(last = (PyArrayObject *)PyArray_SimpleNew(3, d, NPY_FLOAT32))) goto fail;
    }
    tfm_forward_args fa = {
        .input_ids = (const int32_t *)PyArray_DATA(ids),
        .attention_mask = mask ? (const int32_t *)PyArray_DATA(mask) : NULL,
        .position_ids = pos ? (const int32_t *)PyArray_DATA(pos) : NULL,
        .token_type_ids = tt ? (const int32_t *)PyArray_DATA(tt) : NULL,
        .B = B,
        .T = T,
        .logits_mode = mode,
        .logits = logits ? (float *)PyArray_DATA(logits) : NULL,
        .last_hidden = last ? (float *)PyArray_DATA(last) : NULL,
        .hidden_states = hs ? (float *)PyArray_DATA(hs) : NULL,
        .attentions = attn ? (float *)PyArray_DATA(attn) : NULL,
    };
    tfm_status st;
    if (cache) cache->busy = 1;
    self->active++;
    Py_BEGIN_ALLOW_THREADS
    st = tfm_workspace_init(&ws, &self->model, B * T, S);
    if (st == TFM_OK && cache && S > cache->cache.capacity) {
        /* grow geometrically so token-by-token decoding does not copy the cache every step */
        int64_t cap = cache->cache.capacity * 2 > S ? cache->cache.capacity * 2 : S;
        if (cap > cfg->n_positions) cap = S > cfg->n_positions ? S : cfg->n_positions;
        st = tfm_kv_cache_reserve(&cache->cache, cap);
    }
    if (st == TFM_OK) st = tfm_model_forward(&self->model, cache ? &cache->cache : NULL, &ws, &fa);
    tfm_workspace_free(&ws);
    Py_END_ALLOW_THREADS
    self->active--;
    if (cache) cache->busy = 0;
    if (st != TFM_OK) {
        raise_status(st, "forward");
        goto fail;
    }
    result = PyDict_New();
    if (!result) goto fail;
    if ((logits && PyDict_SetItemString(result, "logits", (PyObject *)logits) < 0) ||
        (hs && PyDict_SetItemString(result, "hidden_states", (PyObject *)hs) < 0) ||
        (attn && PyDict_SetItemString(result, "attentions", (PyObject *)attn) < 0) ||
        (last && PyDict_SetItemString(result, "last_hidden_state", (PyObject *)last) < 0)) {
        Py_CLEAR(result);
    }
fail:
    Py_XDECREF(ids), Py_XDECREF(mask), Py_XDECREF(pos), Py_XDECREF(tt);
    Py_XDECREF(logits), Py_XDECREF(hs), Py_XDECREF(attn), Py_XDECREF(last);
    return result;
}

/* ---------------------------------------------------------------------------------------------
 * Model.encode: the encoder forward (BERT family) and its heads
 * ------------------------------------------------------------------------------------------- */

/* An optional [B][T] integer input with values in [lo, hi); NULL with no error when obj is None. */
static PyArrayObject *as_bt_i32(PyObject *obj, const char *name, int64_t lo, int64_t hi, int64_t B, int64_t T,
                                int *failed) {
    *failed = 0;
    if (obj == Py_None) return NULL;
    PyArrayObject *a = as_i32(obj, name, lo, hi);
    if (a && (PyArray_NDIM(a) != 2 || PyArray_DIM(a, 0) != B || PyArray_DIM(a, 1) != T)) {
        PyErr_Format(PyExc_ValueError, "%s must have shape (%lld, %lld) like input_ids", name, (long long)B,
                     (long long)T);
        Py_CLEAR(a);
    }
    if (!a) *failed = 1;
    return a;
}

/* A new float32 array of the given shape, or NULL (no error) when not wanted. */
static PyArrayObject *new_output(int wanted, int nd, npy_intp *dims, int *failed) {
    if (!wanted) return NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_SimpleNew(nd, dims, NPY_FLOAT32);
    if (!a) *failed = 1;
    return a;
}

/* encode(input_ids, attention_mask=None, position_ids=None, token_type_ids=None, hidden_states=False,
 *        attentions=False, last_hidden=True, pooled=False, seq_logits=False, mlm_logits=False,
 *        tok_logits=False) -> dict with the requested outputs:
 *   last_hidden_state [B,T,C], hidden_states [n_apply/hidden_every+1,B,T,C], attentions [n_apply,B,NH,T,T],
 *   pooled [B,C], seq_logits [B,NS], mlm_logits [B,T,V], tok_logits [B,T,NT]. */
static PyObject *Model_encode(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"input_ids", "attention_mask", "position_ids", "token_type_ids", "hidden_states",
                             "attentions", "last_hidden", "pooled", "seq_logits", "mlm_logits", "tok_logits", NULL};
    PyObject *ids_o, *mask_o = Py_None, *pos_o = Py_None, *tt_o = Py_None;
    int want[7] = {0, 0, 1, 0, 0, 0, 0}; /* hidden_states, attentions, last, pooled, seq, mlm, tok */
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOppppppp", kwlist, &ids_o, &mask_o, &pos_o, &tt_o, &want[0],
                                     &want[1], &want[2], &want[3], &want[4], &want[5], &want[6]) ||
        !model_ready(self))
        return NULL;
    const tfm_config *cfg = &self->model.cfg;
    if (!tfm_arch_is_encoder(cfg->arch)) {
        PyErr_SetString(PyExc_TypeError, "encode() runs encoders; this model is a decoder: use forward()");
        return NULL;
    }
    static const char *const head_names[4] = {"a pooler", "a sequence classifier", "an MLM head",
                                              "a token classifier"};
    const int have[4] = {cfg->pooler_act >= 0, cfg->n_seq_labels > 0, cfg->mlm_size > 0, cfg->n_tok_labels > 0};
    for (int i = 0; i < 4; i++)
        if (want[3 + i] && !have[i]) {
            PyErr_Format(PyExc_ValueError, "encode: this model was built without %s", head_names[i]);
            return NULL;
        }
    PyArrayObject *ids = NULL, *mask = NULL, *pos = NULL, *tt = NULL;
    PyArrayObject *out[7] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    static const char *const out_names[7] = {"hidden_states", "attentions", "last_hidden_state", "pooled",
                                             "seq_logits", "mlm_logits", "tok_logits"};
    PyObject *result = NULL;
    int failed = 0;
    tfm_workspace ws;
    memset(&ws, 0, sizeof ws);
    if (!(ids = as_i32(ids_o, "input_ids", 0, cfg->vocab))) goto fail;
    if (PyArray_NDIM(ids) != 2 || PyArray_DIM(ids, 0) < 1 || PyArray_DIM(ids, 1) < 1) {
        PyErr_SetString(PyExc_ValueError, "input_ids must be a non-empty 2-D array [batch, seq]");
        goto fail;
    }
    const int64_t B = PyArray_DIM(ids, 0), T = PyArray_DIM(ids, 1);
    /* default positions are 0..T-1, except RoBERTa's, which skip pads (checked in the core) */
    if (T > cfg->n_positions && pos_o == Py_None && cfg->arch != TFM_ARCH_ROBERTA) {
        PyErr_Format(PyExc_ValueError, "sequence length %lld exceeds the model's maximum of %d positions",
                     (long long)T, cfg->n_positions);
        goto fail;
    }
    if (tt_o != Py_None && cfg->type_vocab_size == 0) {
        PyErr_SetString(PyExc_ValueError, "this model has no token type embeddings: token_type_ids must be None");
        goto fail;
    }
    mask = as_bt_i32(mask_o, "attention_mask", 0, 2, B, T, &failed);
    if (!failed) pos = as_bt_i32(pos_o, "position_ids", 0, cfg->n_positions, B, T, &failed);
    if (!failed) tt = as_bt_i32(tt_o, "token_type_ids", 0, cfg->type_vocab_size, B, T, &failed);
    if (failed) goto fail;
    /* outputs, allocated before compute */
    const int64_t C = cfg->hidden, NH = cfg->n_head;
    const int64_t n_apply = cfg->n_apply > 0 ? cfg->n_apply : cfg->n_layer;
    const int64_t every = cfg->hidden_every > 0 ? cfg->hidden_every : 1;
    npy_intp d_hs[4] = {n_apply / every + 1, B, T, C}, d_attn[5] = {n_apply, B, NH, T, T}, d_last[3] = {B, T, C};
    npy_intp d_pool[2] = {B, C}, d_seq[2] = {B, cfg->n_seq_labels}, d_mlm[3] = {B, T, cfg->vocab};
    npy_intp d_tok[3] = {B, T, cfg->n_tok_labels};
    out[0] = new_output(want[0], 4, d_hs, &failed);
    out[1] = new_output(want[1], 5, d_attn, &failed);
    out[2] = new_output(want[2], 3, d_last, &failed);
    out[3] = new_output(want[3], 2, d_pool, &failed);
    out[4] = new_output(want[4], 2, d_seq, &failed);
    out[5] = new_output(want[5], 3, d_mlm, &failed);
    out[6] = new_output(want[6], 3, d_tok, &failed);
    if (failed) goto fail;
#define OUT_PTR(i) (out[i] ? (float *)PyArray_DATA(out[i]) : NULL)
    tfm_encoder_args ea = {
        .input_ids = (const int32_t *)PyArray_DATA(ids),
        .attention_mask = mask ? (const int32_t *)PyArray_DATA(mask) : NULL,
        .position_ids = pos ? (const int32_t *)PyArray_DATA(pos) : NULL,
        .token_type_ids = tt ? (const int32_t *)PyArray_DATA(tt) : NULL,
        .B = B,
        .T = T,
        .hidden_states = OUT_PTR(0),
        .attentions = OUT_PTR(1),
        .last_hidden = OUT_PTR(2),
        .pooled = OUT_PTR(3),
        .seq_logits = OUT_PTR(4),
        .mlm_logits = OUT_PTR(5),
        .tok_logits = OUT_PTR(6),
    };
#undef OUT_PTR
    tfm_status st;
    self->active++;
    Py_BEGIN_ALLOW_THREADS
    st = tfm_workspace_init(&ws, &self->model, B * T, T);
    if (st == TFM_OK) st = tfm_encoder_forward(&self->model, &ws, &ea);
    tfm_workspace_free(&ws);
    Py_END_ALLOW_THREADS
    self->active--;
    if (st == TFM_E_RANGE) {
        /* ids, types and given positions were checked above: only computed positions are left */
        PyErr_Format(PyExc_ValueError, "position ids computed from input_ids reach past the model's %d positions",
                     cfg->n_positions);
        goto fail;
    }
    if (st != TFM_OK) {
        raise_status(st, "encode");
        goto fail;
    }
    if (!(result = PyDict_New())) goto fail;
    for (int i = 0; i < 7; i++)
        if (out[i] && PyDict_SetItemString(result, out_names[i], (PyObject *)out[i]) < 0) {
            Py_CLEAR(result);
            break;
        }
fail:
    Py_XDECREF(ids), Py_XDECREF(mask), Py_XDECREF(pos), Py_XDECREF(tt);
    for (int i = 0; i < 7; i++) Py_XDECREF(out[i]);
    return result;
}

static PyObject *Model_new_cache(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"batch", "capacity", NULL};
    long long batch, capacity;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LL", kwlist, &batch, &capacity) || !model_ready(self)) return NULL;
    if (tfm_arch_is_encoder(self->model.cfg.arch)) {
        PyErr_SetString(PyExc_TypeError, "encoders have no KV cache");
        return NULL;
    }
    if (batch < 1 || capacity < 1 || capacity > self->model.cfg.n_positions) {
        PyErr_Format(PyExc_ValueError, "cache needs batch >= 1 and 1 <= capacity <= %d", self->model.cfg.n_positions);
        return NULL;
    }
    PyObject *module = PyType_GetModule(Py_TYPE(self));
    if (!module) return NULL;
    return new_cache(get_state(module)->cache_type, self, batch, capacity);
}

static PyObject *Model_get_uid(ModelObject *self, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->model.uid);
}

static PyMethodDef Model_methods[] = {
    {"param_shape", (PyCFunction)Model_param_shape, METH_VARARGS, "param_shape(slot) -> expected shape or None"},
    {"set_param", (PyCFunction)(void (*)(void))Model_set_param, METH_VARARGS | METH_KEYWORDS,
     "set_param(slot, layer, array, dtype='f32', layout=0): copy one weight (converted, packed)"},
    {"missing", (PyCFunction)Model_missing, METH_NOARGS, "missing() -> None or (slot, layer) of the first unset weight"},
    {"forward", (PyCFunction)(void (*)(void))Model_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(input_ids, attention_mask=None, position_ids=None, token_type_ids=None, cache=None, logits='all', "
     "hidden_states=False, attentions=False, last_hidden=False) -> dict of arrays"},
    {"new_cache", (PyCFunction)(void (*)(void))Model_new_cache, METH_VARARGS | METH_KEYWORDS,
     "new_cache(batch, capacity) -> KVCache"},
    {"encode", (PyCFunction)(void (*)(void))Model_encode, METH_VARARGS | METH_KEYWORDS,
     "encode(input_ids, attention_mask=None, position_ids=None, token_type_ids=None, hidden_states=False, "
     "attentions=False, last_hidden=True, pooled=False, seq_logits=False, mlm_logits=False, tok_logits=False) "
     "-> dict of arrays (encoders)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Model_getset[] = {
    {"uid", (getter)Model_get_uid, NULL, "identity of the model for its caches", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Model_slots[] = {
    {Py_tp_doc, "Weights of one transformer (decoder or encoder), owned by the C core."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Model_init},
    {Py_tp_dealloc, Model_dealloc},
    {Py_tp_methods, Model_methods},
    {Py_tp_getset, Model_getset},
    {0, NULL},
};

static PyType_Spec Model_spec = {"tfm._tfmcore.Model", sizeof(ModelObject), 0, Py_TPFLAGS_DEFAULT, Model_slots};

/* ---------------------------------------------------------------------------------------------
 * KVCache
 * ------------------------------------------------------------------------------------------- */
static PyObject *new_cache(PyTypeObject *cache_type, ModelObject *model, int64_t batch, int64_t capacity) {
    CacheObject *c = (CacheObject *)cache_type->tp_alloc(cache_type, 0);
    if (!c) return NULL;
    tfm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tfm_kv_cache_init(&c->cache, &model->model, batch, capacity);
    Py_END_ALLOW_THREADS
    if (st != TFM_OK) {
        Py_DECREF(c);
        return raise_status(st, "KVCache");
    }
    Py_INCREF(model);
    c->owner = (PyObject *)model;
    return (PyObject *)c;
}

static void Cache_dealloc(CacheObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tfm_kv_cache_free(&self->cache);
    Py_CLEAR(self->owner);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int cache_usable(CacheObject *self) {
    if (!self->cache.k) {
        PyErr_SetString(PyExc_RuntimeError, "KVCache is empty");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this KVCache is in use by another thread");
        return 0;
    }
    return 1;
}

static PyObject *Cache_reorder(CacheObject *self, PyObject *args) {
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj) || !cache_usable(self)) return NULL;
    PyArrayObject *idx = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_INT64, NPY_ARRAY_IN_ARRAY);
    if (!idx) return NULL;
    if (PyArray_NDIM(idx) != 1 || PyArray_SIZE(idx) < 1) {
        PyErr_SetString(PyExc_ValueError, "reorder takes a non-empty 1-D array of row indices");
        Py_DECREF(idx);
        return NULL;
    }
    const int64_t *src = (const int64_t *)PyArray_DATA(idx);
    for (npy_intp i = 0; i < PyArray_SIZE(idx); i++)
        if (src[i] < 0 || src[i] >= self->cache.batch) {
            PyErr_Format(PyExc_IndexError, "reorder index %lld outside [0, %lld)", (long long)src[i],
                         (long long)self->cache.batch);
            Py_DECREF(idx);
            return NULL;
        }
    tfm_status st;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    st = tfm_kv_cache_reorder(&self->cache, src, PyArray_SIZE(idx));
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(idx);
    if (st != TFM_OK) return raise_status(st, "reorder");
    Py_RETURN_NONE;
}

static PyObject *Cache_copy(CacheObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!cache_usable(self)) return NULL;
    CacheObject *c = (CacheObject *)Py_TYPE(self)->tp_alloc(Py_TYPE(self), 0);
    if (!c) return NULL;
    tfm_status st = tfm_kv_cache_copy(&c->cache, &self->cache);
    if (st != TFM_OK) {
        Py_DECREF(c);
        return raise_status(st, "copy");
    }
    Py_XINCREF(self->owner);
    c->owner = self->owner;
    return (PyObject *)c;
}

/* keys()/values(): copies as arrays [L][B][NH][length][D], the layout transformers uses per layer. */
static PyObject *cache_export(CacheObject *self, int values) {
    if (!cache_usable(self)) return NULL;
    const tfm_kv_cache *c = &self->cache;
    npy_intp d[5] = {c->n_layer, c->batch, c->n_head, c->length, c->head_dim};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(5, d, NPY_FLOAT32);
    if (!out) return NULL;
    float *dst = (float *)PyArray_DATA(out);
    const float *src = values ? c->v : c->k;
    const int64_t rows = (int64_t)c->n_layer * c->batch * c->n_head, D = c->head_dim;
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + r * c->length * D, src + r * c->capacity * D, (size_t)(c->length * D) * sizeof(float));
    return (PyObject *)out;
}

static PyObject *Cache_keys(CacheObject *self, PyObject *Py_UNUSED(ignored)) { return cache_export(self, 0); }
static PyObject *Cache_values(CacheObject *self, PyObject *Py_UNUSED(ignored)) { return cache_export(self, 1); }

static PyObject *Cache_get_length(CacheObject *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->cache.length);
}
static PyObject *Cache_get_batch(CacheObject *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->cache.batch);
}
static PyObject *Cache_get_capacity(CacheObject *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->cache.capacity);
}
static PyObject *Cache_get_model_uid(CacheObject *self, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->cache.model_uid);
}

static PyMethodDef Cache_methods[] = {
    {"reorder", (PyCFunction)Cache_reorder, METH_VARARGS, "reorder(rows): row r becomes old row rows[r] (beams)"},
    {"copy", (PyCFunction)Cache_copy, METH_NOARGS, "deep copy"},
    {"keys", (PyCFunction)Cache_keys, METH_NOARGS, "keys as float32 [L, B, NH, length, D] (a copy)"},
    {"values", (PyCFunction)Cache_values, METH_NOARGS, "values as float32 [L, B, NH, length, D] (a copy)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Cache_getset[] = {
    {"length", (getter)Cache_get_length, NULL, "positions cached", NULL},
    {"batch", (getter)Cache_get_batch, NULL, "rows", NULL},
    {"capacity", (getter)Cache_get_capacity, NULL, "positions allocated", NULL},
    {"model_uid", (getter)Cache_get_model_uid, NULL, "uid of the model it belongs to", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Cache_slots[] = {
    {Py_tp_doc, "Keys and values of past positions for one model (mutable: forward appends)."},
    {Py_tp_dealloc, Cache_dealloc},
    {Py_tp_methods, Cache_methods},
    {Py_tp_getset, Cache_getset},
    {0, NULL},
};

static PyType_Spec Cache_spec = {"tfm._tfmcore.KVCache", sizeof(CacheObject), 0, Py_TPFLAGS_DEFAULT, Cache_slots};

/* ---------------------------------------------------------------------------------------------
 * Kernel entry points (tests compare each fast path with its scalar twin)
 * ------------------------------------------------------------------------------------------- */
static PyObject *py_select_isa(PyObject *module, PyObject *args) {
    (void)module;
    const char *name = "auto";
    if (!PyArg_ParseTuple(args, "|s", &name)) return NULL;
    tfm_isa want;
    if (!strcmp(name, "auto")) want = TFM_ISA_AUTO;
    else if (!strcmp(name, "scalar")) want = TFM_ISA_SCALAR;
    else if (!strcmp(name, "generic")) want = TFM_ISA_GENERIC;
    else if (!strcmp(name, "avx2")) want = TFM_ISA_AVX2;
    else if (!strcmp(name, "avx512")) want = TFM_ISA_AVX512;
    else {
        PyErr_Format(PyExc_ValueError, "unknown ISA %s (auto, scalar, generic, avx2, avx512)", name);
        return NULL;
    }
    return PyUnicode_FromString(tfm_isa_name(tfm_select_isa(want)));
}

/* linear(x [M,K], w [N,K], bias [N] or None) -> x·wᵀ + b through the packed GEMM; naive=True uses
 * the scalar twin on the unpacked matrix. */
static PyObject *py_linear(PyObject *module, PyObject *args, PyObject *kw) {
    (void)module;
    static char *kwlist[] = {"x", "w", "bias", "naive", NULL};
    PyObject *xo, *wo, *bo = Py_None;
    int naive = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|Op", kwlist, &xo, &wo, &bo, &naive)) return NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *y = NULL;
    tfm_linear lin;
    memset(&lin, 0, sizeof lin);
    if (!(x = as_f32(xo, "x")) || !(w = as_f32(wo, "w"))) goto fail;
    if (bo != Py_None && !(b = as_f32(bo, "bias"))) goto fail;
    if (PyArray_NDIM(x) != 2 || PyArray_NDIM(w) != 2 || PyArray_DIM(x, 1) != PyArray_DIM(w, 1) ||
        PyArray_DIM(w, 0) < 1 || PyArray_DIM(w, 1) < 1 ||
        (b && (PyArray_NDIM(b) != 1 || PyArray_DIM(b, 0) != PyArray_DIM(w, 0)))) {
        PyErr_SetString(PyExc_ValueError, "linear: need x [M,K], w [N,K], bias [N]");
        goto fail;
    }
    int64_t M = PyArray_DIM(x, 0), N = PyArray_DIM(w, 0), K = PyArray_DIM(w, 1);
    npy_intp d[2] = {M, N};
    if (!(y = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_FLOAT32))) goto fail;
    tfm_status st = TFM_OK;
    Py_BEGIN_ALLOW_THREADS
    if (naive) {
        tfm_matmul_naive((float *)PyArray_DATA(y), (float *)PyArray_DATA(x), (float *)PyArray_DATA(w),
                         b ? (float *)PyArray_DATA(b) : NULL, M, N, K);
    } else {
        st = tfm_linear_init(&lin, N, K, b != NULL);
        if (st == TFM_OK) st = tfm_linear_set_rows(&lin, 0, PyArray_DATA(w), TFM_F32, N, 0);
        if (st == TFM_OK && b) st = tfm_linear_set_bias(&lin, 0, PyArray_DATA(b), TFM_F32, N);
        if (st == TFM_OK) tfm_linear_forward((float *)PyArray_DATA(y), N, (float *)PyArray_DATA(x), K, &lin, M);
        tfm_linear_free(&lin);
    }
    Py_END_ALLOW_THREADS
    if (st != TFM_OK) {
        raise_status(st, "linear");
        Py_CLEAR(y);
    }
fail:
    Py_XDECREF(x), Py_XDECREF(w), Py_XDECREF(b);
    return (PyObject *)y;
}

/* activation(x, act, scalar=False) -> new array */
static PyObject *py_activation(PyObject *module, PyObject *args, PyObject *kw) {
    (void)module;
    static char *kwlist[] = {"x", "act", "scalar", NULL};
    PyObject *xo;
    int act, scalar = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p", kwlist, &xo, &act, &scalar)) return NULL;
    if (act < 0 || act >= TFM_ACT_COUNT) {
        PyErr_Format(PyExc_ValueError, "unknown activation code %d", act);
        return NULL;
    }
    PyArrayObject *x = as_f32(xo, "x");
    if (!x) return NULL;
    PyArrayObject *y = (PyArrayObject *)PyArray_NewCopy(x, NPY_CORDER);
    Py_DECREF(x);
    if (!y) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (scalar)
        tfm_activation_scalar((float *)PyArray_DATA(y), PyArray_SIZE(y), (tfm_act)act);
    else
        tfm_activation((float *)PyArray_DATA(y), PyArray_SIZE(y), (tfm_act)act);
    Py_END_ALLOW_THREADS
    return (PyObject *)y;
}

/* to_f32(array, dtype) -> float32 copy (f16 from float16, bf16 from uint16 bits) */
static PyObject *py_to_f32(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *obj;
    const char *dts;
    if (!PyArg_ParseTuple(args, "Os", &obj, &dts)) return NULL;
    tfm_dtype dt;
    if (parse_dtype(dts, &dt) < 0) return NULL;
    int want = dt == TFM_F32 ? NPY_FLOAT32 : (dt == TFM_F16 ? NPY_FLOAT16 : NPY_UINT16);
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, want, NPY_ARRAY_IN_ARRAY);
    if (!a) return NULL;
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(a), PyArray_DIMS(a), NPY_FLOAT32);
    if (out) tfm_convert_to_f32((float *)PyArray_DATA(out), PyArray_DATA(a), dt, PyArray_SIZE(a));
    Py_DECREF(a);
    return (PyObject *)out;
}

static PyObject *py_max_threads(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    return PyLong_FromLong(tfm_max_threads());
}

static PyMethodDef module_methods[] = {
    {"select_isa", py_select_isa, METH_VARARGS, "select_isa(name='auto') -> the ISA path now in use"},
    {"linear", (PyCFunction)(void (*)(void))py_linear, METH_VARARGS | METH_KEYWORDS,
     "linear(x, w, bias=None, naive=False) -> x @ w.T + bias (packed GEMM, or its scalar twin)"},
    {"activation", (PyCFunction)(void (*)(void))py_activation, METH_VARARGS | METH_KEYWORDS,
     "activation(x, act, scalar=False) -> act(x)"},
    {"to_f32", py_to_f32, METH_VARARGS, "to_f32(array, dtype) -> float32 copy"},
    {"max_threads", py_max_threads, METH_NOARGS, "number of threads a kernel call uses"},
    {NULL, NULL, 0, NULL},
};

/* ---------------------------------------------------------------------------------------------
 * Module: multi-phase init, per-module state
 * ------------------------------------------------------------------------------------------- */
/* Names of the tfm_param slots and tfm_arch codes, exported as dicts so Python does not hard-code them. */
typedef struct {
    const char *name;
    int value;
} named_code;
#define SLOT(name) {#name, TFM_P_##name}
static const named_code slot_names[] = {
    SLOT(WTE), SLOT(WPE), SLOT(LNF_W), SLOT(LNF_B), SLOT(LM_HEAD), SLOT(LN1_W), SLOT(LN1_B), SLOT(QKV_W),
    SLOT(QKV_B), SLOT(Q_W), SLOT(K_W), SLOT(V_W), SLOT(ATTN_OUT_W), SLOT(ATTN_OUT_B), SLOT(LN2_W), SLOT(LN2_B),
    SLOT(FC_IN_W), SLOT(FC_IN_B), SLOT(FC_OUT_W), SLOT(FC_OUT_B), SLOT(Q_B), SLOT(K_B), SLOT(V_B),
    SLOT(TOKEN_TYPE), SLOT(EMB_LN_W), SLOT(EMB_LN_B), SLOT(EMB_PROJ_W), SLOT(EMB_PROJ_B), SLOT(POOL_W),
    SLOT(POOL_B), SLOT(SEQ_W), SLOT(SEQ_B), SLOT(MLM_DENSE_W), SLOT(MLM_DENSE_B), SLOT(MLM_LN_W), SLOT(MLM_LN_B),
    SLOT(MLM_BIAS), SLOT(TOK_DENSE_W), SLOT(TOK_DENSE_B), SLOT(TOK_W), SLOT(TOK_B),
};
#undef SLOT
#define ARCH(name) {#name, TFM_ARCH_##name}
static const named_code arch_names[] = {
    ARCH(GPT2),    ARCH(OPENAI_GPT), ARCH(GPT_NEO),    ARCH(BERT),
    ARCH(ROBERTA), ARCH(ALBERT),     ARCH(DISTILBERT), ARCH(ELECTRA),
};
#undef ARCH

static int add_code_dict(PyObject *m, const char *attr, const named_code *table, size_t n) {
    PyObject *d = PyDict_New();
    if (!d) return -1;
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(table[i].value);
        if (!v || PyDict_SetItemString(d, table[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    int rc = PyModule_AddObjectRef(m, attr, d);
    Py_DECREF(d);
    return rc;
}

static int module_exec(PyObject *m) {
    import_array1(-1);
    module_state *s = get_state(m);
    s->model_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Model_spec, NULL);
    if (!s->model_type || PyModule_AddType(m, s->model_type) < 0) return -1;
    s->cache_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Cache_spec, NULL);
    if (!s->cache_type || PyModule_AddType(m, s->cache_type) < 0) return -1;
    _Static_assert(sizeof slot_names / sizeof slot_names[0] == TFM_P_COUNT, "every tfm_param slot is named");
    if (add_code_dict(m, "param_slots", slot_names, TFM_P_COUNT) < 0 ||
        add_code_dict(m, "archs", arch_names, sizeof arch_names / sizeof arch_names[0]) < 0)
        return -1;
    tfm_isa isa = tfm_select_isa(TFM_ISA_AUTO);
    if (PyModule_AddStringConstant(m, "isa", tfm_isa_name(isa)) < 0) return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    module_state *s = get_state(m);
    Py_VISIT(s->model_type);
    Py_VISIT(s->cache_type);
    return 0;
}

static int module_clear(PyObject *m) {
    module_state *s = get_state(m);
    Py_CLEAR(s->model_type);
    Py_CLEAR(s->cache_type);
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef tfmcore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tfm._tfmcore",
    .m_doc = "C core of tfm: transformer forward passes and decoding on NumPy arrays.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
};

PyMODINIT_FUNC PyInit__tfmcore(void) { return PyModuleDef_Init(&tfmcore_module); }
