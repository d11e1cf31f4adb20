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
    PyTypeObject *generator_type;
    Py_ssize_t live_generators; /* C generators not yet freed (tests check streams release theirs) */
    tfm_sampling_ws *ws; /* decoding scratch reused across calls (taken/returned under the GIL) */
    int ws_busy;
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
 * Generator: one generate() call (generate.c / beam.c). Owns its output arrays and copies of
 * every processor parameter array; run() loops in C with the GIL released, step() advances one
 * token (streaming).
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    PyObject *model;        /* ModelObject, kept alive */
    PyObject *keep;         /* list of arrays the config points into */
    PyObject *outputs;      /* dict name -> array */
    tfm_processor *procs;
    int32_t *eos;
    tfm_gen_config cfg;
    tfm_gen_output out;
    tfm_generator *gen;
    PyArrayObject *prompt, *mask;
    int busy, done;
} GeneratorObject;

static int dict_long(PyObject *d, const char *key, long long dflt, long long *out) {
    PyObject *v = PyDict_GetItemString(d, key);
    if (!v || v == Py_None) {
        *out = dflt;
        return 0;
    }
    *out = PyLong_AsLongLong(v);
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "generation config %s must be an integer", key);
        return -1;
    }
    return 0;
}

static int dict_double(PyObject *d, const char *key, double dflt, double *out) {
    PyObject *v = PyDict_GetItemString(d, key);
    if (!v || v == Py_None) {
        *out = dflt;
        return 0;
    }
    *out = PyFloat_AsDouble(v);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "generation config %s must be a number", key);
        return -1;
    }
    return 0;
}

/* Keeps an int32/int64/float32 copy of obj alive in g->keep; returns its data or NULL. */
static void *keep_array(GeneratorObject *g, PyObject *obj, int type, npy_intp *n, const char *name) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, type, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!a) return NULL;
    if (PyArray_NDIM(a) != 1) {
        PyErr_Format(PyExc_ValueError, "%s must be 1-D", name);
        Py_DECREF(a);
        return NULL;
    }
    if (PyList_Append(g->keep, (PyObject *)a) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    Py_DECREF(a);
    *n = PyArray_SIZE(a);
    return PyArray_DATA(a);
}

static int check_ids_range(const int32_t *ids, npy_intp n, int32_t V, const char *name) {
    for (npy_intp i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            PyErr_Format(PyExc_ValueError, "%s contains token id %d, outside the vocabulary [0, %d)", name, ids[i], V);
            return -1;
        }
    return 0;
}

/* procs: list of (kind, f0, f1, i0, i1, tokens|None, (ids, offsets, bias)|None, dry|None)
 * dry = (multiplier, base, allowed_length, last_n, breaker_ids, breaker_offsets) */
static int parse_processors(GeneratorObject *g, PyObject *list, int32_t V) {
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "processors must be a list");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    g->procs = (tfm_processor *)PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(tfm_processor));
    if (!g->procs) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        tfm_processor *p = &g->procs[i];
        PyObject *tok = Py_None, *sb = Py_None, *dry = Py_None;
        double f0, f1;
        long long i0, i1;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "iddLL|OOO", &p->kind, &f0, &f1, &i0, &i1, &tok, &sb, &dry))
            return -1;
        if (p->kind < TFM_PROC_SEQUENCE_BIAS || p->kind > TFM_PROC_LOG_SOFTMAX) {
            PyErr_Format(PyExc_ValueError, "unknown processor kind %d", p->kind);
            return -1;
        }
        p->f0 = (float)f0, p->f1 = (float)f1, p->i0 = i0, p->i1 = i1;
        npy_intp cnt;
        if (tok != Py_None) {
            if (!(p->tokens = keep_array(g, tok, NPY_INT32, &cnt, "tokens"))) return -1;
            p->n_tokens = cnt;
            if (check_ids_range(p->tokens, cnt, V, "suppressed tokens") < 0) return -1;
        }
        if (sb != Py_None) {
            PyObject *ids, *offs, *bias;
            if (!PyArg_ParseTuple(sb, "OOO", &ids, &offs, &bias)) return -1;
            npy_intp n_ids, n_offs, n_bias;
            if (!(p->sb.ids = keep_array(g, ids, NPY_INT32, &n_ids, "sequence ids")) ||
                !(p->sb.offsets = keep_array(g, offs, NPY_INT64, &n_offs, "sequence offsets")) ||
                !(p->sb.bias = keep_array(g, bias, NPY_FLOAT32, &n_bias, "sequence bias")))
                return -1;
            if (n_offs != n_bias + 1 || p->sb.offsets[0] != 0 || p->sb.offsets[n_bias] != n_ids) {
                PyErr_SetString(PyExc_ValueError, "sequence bias offsets do not match the ids");
                return -1;
            }
            for (npy_intp k = 0; k < n_bias; k++)
                if (p->sb.offsets[k + 1] <= p->sb.offsets[k]) {
                    PyErr_SetString(PyExc_ValueError, "sequence bias sequences must be non-empty");
                    return -1;
                }
            if (check_ids_range(p->sb.ids, n_ids, V, "bad_words_ids / sequence_bias") < 0) return -1;
            p->sb.count = n_bias;
        }
        if (dry != Py_None) {
            PyObject *bids, *boffs;
            double mult, base;
            long long allowed, last_n;
            if (!PyArg_ParseTuple(dry, "ddLLOO", &mult, &base, &allowed, &last_n, &bids, &boffs)) return -1;
            npy_intp nb, no;
            p->dry.multiplier = (float)mult, p->dry.base = (float)base;
            p->dry.allowed_length = allowed, p->dry.last_n = last_n;
            if (!(p->dry.breaker_ids = keep_array(g, bids, NPY_INT32, &nb, "dry breakers")) ||
                !(p->dry.breaker_offsets = keep_array(g, boffs, NPY_INT64, &no, "dry breaker offsets")))
                return -1;
            if (no < 1 || p->dry.breaker_offsets[0] != 0 || p->dry.breaker_offsets[no - 1] != nb) {
                PyErr_SetString(PyExc_ValueError, "dry breaker offsets do not match the ids");
                return -1;
            }
            if (check_ids_range(p->dry.breaker_ids, nb, V, "dry breakers") < 0) return -1;
            p->dry.n_breakers = no - 1;
        }
    }
    g->cfg.procs = g->procs;
    g->cfg.n_procs = (int32_t)n;
    return 0;
}

static PyArrayObject *generator_output(GeneratorObject *g, const char *name, int nd, npy_intp *dims, int type) {
    PyArrayObject *a = (PyArrayObject *)PyArray_ZEROS(nd, dims, type, 0);
    if (!a) return NULL;
    if (PyDict_SetItemString(g->outputs, name, (PyObject *)a) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    Py_DECREF(a); /* the dict holds it */
    return a;
}

/* Generator(model, prompt [B,P], mask [B,P] or None, config: dict, processors: list, want: dict) */
static int Generator_init(GeneratorObject *g, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"model", "prompt", "mask", "config", "processors", "want", NULL};
    PyObject *model_o, *prompt_o, *mask_o, *cfg_d, *procs_o, *want_d;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO!O!O!", kwlist, &model_o, &prompt_o, &mask_o, &PyDict_Type, &cfg_d,
                                     &PyList_Type, &procs_o, &PyDict_Type, &want_d))
        return -1;
    if (g->model) {
        PyErr_SetString(PyExc_RuntimeError, "Generator is already initialised");
        return -1;
    }
    PyObject *module = PyType_GetModule(Py_TYPE(g));
    if (!module) return -1;
    if (!PyObject_TypeCheck(model_o, get_state(module)->model_type) || !((ModelObject *)model_o)->initialised) {
        PyErr_SetString(PyExc_TypeError, "model must be an initialised _tfmcore.Model");
        return -1;
    }
    ModelObject *mo = (ModelObject *)model_o;
    const int32_t V = mo->model.cfg.vocab;
    Py_INCREF(model_o);
    g->model = model_o;
    if (!(g->keep = PyList_New(0)) || !(g->outputs = PyDict_New())) return -1;
    if (!(g->prompt = as_i32(prompt_o, "input_ids", 0, V))) return -1;
    if (PyArray_NDIM(g->prompt) != 2 || PyArray_DIM(g->prompt, 0) < 1 || PyArray_DIM(g->prompt, 1) < 1) {
        PyErr_SetString(PyExc_ValueError, "input_ids must be a non-empty 2-D array [batch, seq]");
        return -1;
    }
    const int64_t B = PyArray_DIM(g->prompt, 0), P = PyArray_DIM(g->prompt, 1);
    if (mask_o != Py_None) {
        if (!(g->mask = as_i32(mask_o, "attention_mask", 0, 2))) return -1;
        if (PyArray_NDIM(g->mask) != 2 || PyArray_DIM(g->mask, 0) != B || PyArray_DIM(g->mask, 1) != P) {
            PyErr_Format(PyExc_ValueError, "attention_mask must have the shape of input_ids (%lld, %lld)", (long long)B,
                         (long long)P);
            return -1;
        }
    }
    long long mode, max_length, nb, ng, nrs, topk, es, pad, seed, tn;
    double alpha, lp;
    if (dict_long(cfg_d, "mode", 0, &mode) < 0 || dict_long(cfg_d, "max_length", P + 20, &max_length) < 0 ||
        dict_long(cfg_d, "num_beams", 1, &nb) < 0 || dict_long(cfg_d, "num_beam_groups", 1, &ng) < 0 ||
        dict_long(cfg_d, "num_return_sequences", 1, &nrs) < 0 || dict_long(cfg_d, "top_k", 0, &topk) < 0 ||
        dict_long(cfg_d, "early_stopping", 0, &es) < 0 || dict_long(cfg_d, "pad_id", 0, &pad) < 0 ||
        dict_long(cfg_d, "seed", 0, &seed) < 0 || dict_long(cfg_d, "trace_top_n", 0, &tn) < 0 ||
        dict_double(cfg_d, "penalty_alpha", 0.0, &alpha) < 0 || dict_double(cfg_d, "length_penalty", 1.0, &lp) < 0)
        return -1;
    if (max_length <= P || max_length > mo->model.cfg.n_positions) {
        PyErr_Format(PyExc_ValueError, "max_length %lld must exceed the prompt width %lld and be at most the model's %d "
                     "positions", max_length, (long long)P, mo->model.cfg.n_positions);
        return -1;
    }
    if (nb < 1 || nb > 4096 || ng < 1 || nrs < 1 || nrs > 4096 || tn < 0 || tn > 1000 || topk < 0 || topk > V ||
        es < 0 || es > 2 || pad < -1 || pad >= V) {
        PyErr_SetString(PyExc_ValueError, "generation config value out of range");
        return -1;
    }
    PyObject *eos_o = PyDict_GetItemString(cfg_d, "eos");
    if (eos_o && eos_o != Py_None) {
        npy_intp n;
        if (!(g->cfg.eos = keep_array(g, eos_o, NPY_INT32, &n, "eos_token_id"))) return -1;
        if (check_ids_range(g->cfg.eos, n, V, "eos_token_id") < 0) return -1;
        g->cfg.n_eos = (int32_t)n;
    }
    g->cfg.mode = (int32_t)mode, g->cfg.max_length = max_length, g->cfg.num_beams = (int32_t)nb;
    g->cfg.num_beam_groups = (int32_t)ng, g->cfg.num_return_sequences = (int32_t)nrs, g->cfg.top_k = (int32_t)topk;
    g->cfg.penalty_alpha = (float)alpha, g->cfg.length_penalty = (float)lp, g->cfg.early_stopping = (int32_t)es;
    g->cfg.pad_id = (int32_t)pad, g->cfg.seed = (uint64_t)seed, g->cfg.trace_top_n = (int32_t)tn;
    if (parse_processors(g, procs_o, V) < 0) return -1;

    int64_t N, R, W;
    tfm_gen_output_dims(&g->cfg, B, &N, &R, &W);
    const int64_t M = max_length - P, S = g->cfg.n_procs + 1;
    npy_intp d_seq[2] = {N, max_length}, d_n[1] = {N}, d_nm[2] = {N, M};
    PyArrayObject *a;
    if (!(a = generator_output(g, "sequences", 2, d_seq, NPY_INT32))) return -1;
    g->out.sequences = PyArray_DATA(a);
    /* log-probs cost two passes over the vocabulary per row and step: only when asked (beam modes
     * always keep them — they come with the beam bookkeeping) */
    PyObject *want_lp = PyDict_GetItemString(want_d, "logprobs");
    if (W > 0 || (want_lp && PyObject_IsTrue(want_lp))) {
        if (!(a = generator_output(g, "sequences_scores", 1, d_n, NPY_FLOAT32))) return -1;
        g->out.seq_scores = PyArray_DATA(a);
        if (!(a = generator_output(g, "token_logprobs", 2, d_nm, NPY_FLOAT32))) return -1;
        g->out.token_logprobs = PyArray_DATA(a);
        if (!(a = generator_output(g, "raw_logprobs", 2, d_nm, NPY_FLOAT32))) return -1;
        g->out.raw_logprobs = PyArray_DATA(a);
    }
    if (W > 0) {
        if (!(a = generator_output(g, "beam_indices", 2, d_nm, NPY_INT32))) return -1;
        g->out.beam_indices = PyArray_DATA(a);
    }
    if (PyObject_IsTrue(PyDict_GetItemString(want_d, "scores") ? PyDict_GetItemString(want_d, "scores") : Py_False)) {
        npy_intp d[3] = {M, R, V};
        if (!(a = generator_output(g, "scores", 3, d, NPY_FLOAT32))) return -1;
        g->out.scores = PyArray_DATA(a);
    }
    if (tn > 0 && W == 0) {
        npy_intp d4[4] = {M, R, S, tn}, d3[3] = {M, R, S};
        if (!(a = generator_output(g, "trace_ids", 4, d4, NPY_INT32))) return -1;
        g->out.trace_ids = PyArray_DATA(a);
        if (!(a = generator_output(g, "trace_probs", 4, d4, NPY_FLOAT32))) return -1;
        g->out.trace_probs = PyArray_DATA(a);
        if (!(a = generator_output(g, "trace_kept", 3, d3, NPY_INT32))) return -1;
        g->out.trace_kept = PyArray_DATA(a);
        if (!(a = generator_output(g, "trace_mass", 3, d3, NPY_FLOAT32))) return -1;
        g->out.trace_mass = PyArray_DATA(a);
    }
    if (tn > 0 && W > 0) {
        npy_intp d[3] = {M, B, W};
        if (!(a = generator_output(g, "tree_parent", 3, d, NPY_INT32))) return -1;
        g->out.tree_parent = PyArray_DATA(a);
        if (!(a = generator_output(g, "tree_token", 3, d, NPY_INT32))) return -1;
        g->out.tree_token = PyArray_DATA(a);
        if (!(a = generator_output(g, "tree_score", 3, d, NPY_FLOAT32))) return -1;
        g->out.tree_score = PyArray_DATA(a);
        if (!(a = generator_output(g, "tree_final", 3, d, NPY_FLOAT32))) return -1;
        g->out.tree_final = PyArray_DATA(a);
        if (!(a = generator_output(g, "tree_flags", 3, d, NPY_INT32))) return -1;
        g->out.tree_flags = PyArray_DATA(a);
    }
    tfm_status st;
    const int32_t *mask_p = g->mask ? (const int32_t *)PyArray_DATA(g->mask) : NULL;
    Py_BEGIN_ALLOW_THREADS
    st = tfm_generator_init(&g->gen, &mo->model, &g->cfg, (const int32_t *)PyArray_DATA(g->prompt), mask_p, B, P, &g->out);
    Py_END_ALLOW_THREADS
    if (st == TFM_E_ARG) {
        PyErr_SetString(PyExc_ValueError, "generate: inconsistent configuration (beams, groups, return sequences, lengths)");
        return -1;
    }
    if (st != TFM_OK) {
        raise_status(st, "generate");
        return -1;
    }
    get_state(module)->live_generators++;
    return 0;
}

/* Frees the C generator (cache, scratch) once, keeping the module's count of live ones. */
static void generator_release(GeneratorObject *g) {
    if (!g->gen) return;
    tfm_generator_free(g->gen);
    g->gen = NULL;
    PyObject *module = PyType_GetModule(Py_TYPE(g));
    if (module) get_state(module)->live_generators--;
    else PyErr_Clear();
}

static int generator_ready(GeneratorObject *g) {
    if (!g->gen) {
        PyErr_SetString(PyExc_RuntimeError, "Generator is not initialised or was closed");
        return 0;
    }
    if (g->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this Generator is in use by another thread");
        return 0;
    }
    return 1;
}

/* Runs `max_steps` steps (−1 = until done) with the GIL released. */
static PyObject *generator_advance(GeneratorObject *g, long long max_steps) {
    if (!generator_ready(g)) return NULL;
    ModelObject *mo = (ModelObject *)g->model;
    tfm_status st = TFM_OK;
    int done = g->done;
    g->busy = 1;
    mo->active++;
    Py_BEGIN_ALLOW_THREADS
    for (long long i = 0; !done && st == TFM_OK && (max_steps < 0 || i < max_steps); i++)
        st = tfm_generator_step(g->gen, &done);
    Py_END_ALLOW_THREADS
    mo->active--;
    g->busy = 0;
    g->done = done;
    if (st == TFM_E_STATE) {
        PyErr_SetString(PyExc_ValueError, "generate: the processors removed every token of a row (nothing left to choose "
                        "from); loosen the filters or penalties");
        return NULL;
    }
    if (st != TFM_OK) return raise_status(st, "generate");
    return Py_BuildValue("(OL)", done ? Py_True : Py_False, (long long)tfm_generator_length(g->gen));
}

static PyObject *Generator_run(GeneratorObject *g, PyObject *Py_UNUSED(ignored)) { return generator_advance(g, -1); }
static PyObject *Generator_step(GeneratorObject *g, PyObject *Py_UNUSED(ignored)) { return generator_advance(g, 1); }

static PyObject *Generator_outputs(GeneratorObject *g, PyObject *Py_UNUSED(ignored)) {
    if (!g->outputs) {
        PyErr_SetString(PyExc_RuntimeError, "Generator is not initialised");
        return NULL;
    }
    PyObject *d = PyDict_Copy(g->outputs);
    if (!d) return NULL;
    PyObject *extra = Py_BuildValue("{s:L,s:L,s:d,s:d,s:d}", "length", (long long)g->out.length, "steps",
                                    (long long)g->out.steps, "time_prefill", g->out.time_prefill, "time_forward",
                                    g->out.time_forward, "time_total", g->out.time_total);
    if (!extra || PyDict_Update(d, extra) < 0) {
        Py_XDECREF(extra), Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(extra);
    return d;
}

static PyObject *Generator_close(GeneratorObject *g, PyObject *Py_UNUSED(ignored)) {
    if (g->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this Generator is in use by another thread");
        return NULL;
    }
    generator_release(g); /* the KV cache and scratch go now, not at garbage collection */
    Py_RETURN_NONE;
}

static void Generator_dealloc(GeneratorObject *g) {
    PyTypeObject *tp = Py_TYPE(g);
    generator_release(g);
    PyMem_Free(g->procs);
    Py_XDECREF(g->prompt), Py_XDECREF(g->mask);
    Py_XDECREF(g->keep), Py_XDECREF(g->outputs), Py_XDECREF(g->model);
    tp->tp_free((PyObject *)g);
    Py_DECREF(tp);
}

static PyMethodDef Generator_methods[] = {
    {"run", (PyCFunction)Generator_run, METH_NOARGS, "run() -> (done, length): steps until done, GIL released"},
    {"step", (PyCFunction)Generator_step, METH_NOARGS, "step() -> (done, length): one token for every row"},
    {"outputs", (PyCFunction)Generator_outputs, METH_NOARGS, "outputs() -> dict of the output arrays + length, steps"},
    {"close", (PyCFunction)Generator_close, METH_NOARGS, "close(): free the cache and scratch now"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Generator_slots[] = {
    {Py_tp_doc, "One generate() call in the C core (see tfm.generation)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Generator_init},
    {Py_tp_dealloc, Generator_dealloc},
    {Py_tp_methods, Generator_methods},
    {0, NULL},
};

static PyType_Spec Generator_spec = {"tfm._tfmcore.Generator", sizeof(GeneratorObject), 0, Py_TPFLAGS_DEFAULT,
                                     Generator_slots};

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
    static char *kwlist[] = {"x", "w", "bias", "naive", "repeat", NULL};
    PyObject *xo, *wo, *bo = Py_None;
    int naive = 0, repeat = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|Opi", kwlist, &xo, &wo, &bo, &naive, &repeat)) return NULL;
    if (repeat < 1) {
        PyErr_SetString(PyExc_ValueError, "repeat must be >= 1");
        return NULL;
    }
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
        /* repeat > 1: the same product again (benchmarks time the packed GEMM without the packing) */
        for (int r = 0; st == TFM_OK && r < repeat; r++)
            tfm_linear_forward((float *)PyArray_DATA(y), N, (float *)PyArray_DATA(x), K, &lin, M);
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

static PyObject *py_set_num_threads(PyObject *module, PyObject *args) {
    (void)module;
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "set_num_threads: n must be >= 0 (0 = all available)");
        return NULL;
    }
    tfm_set_num_threads(n);
    return PyLong_FromLong(tfm_max_threads());
}

/* =============================================================================================
 * Decoding: processors and samplers (tfm.sampling). Each entry takes float logits [V] or [B, V]
 * (any float dtype, converted to float32), returns NEW arrays (the input is never modified), and
 * refuses NaN and +inf in logits (ValueError naming the row and column; −inf is allowed and means
 * "removed"). Rows are processed with the GIL released, one tfm_sampling_ws per call.
 * Generator state: a writeable C-contiguous uint64 array [B, 4] (xoshiro256** per row), advanced
 * in place.
 * ============================================================================================= */

/* A float32 copy of `obj` as rows [B][V] (the array keeps obj's 1-D or 2-D shape). */
static PyArrayObject *logits_copy(PyObject *obj, const char *name, int64_t *B, int64_t *V) {
    PyArrayObject *tmp = (PyArrayObject *)PyArray_FROM_OF(obj, 0);
    if (!tmp) return NULL;
    if (!PyArray_ISFLOAT(tmp)) {
        PyErr_Format(PyExc_TypeError, "%s must be a floating-point array, got dtype %R", name,
                     (PyObject *)PyArray_DESCR(tmp));
        Py_DECREF(tmp);
        return NULL;
    }
    if (PyArray_NDIM(tmp) < 1 || PyArray_NDIM(tmp) > 2 || PyArray_DIM(tmp, PyArray_NDIM(tmp) - 1) < 1) {
        PyErr_Format(PyExc_ValueError, "%s must have shape [V] or [B, V] with V >= 1, got %d dimensions", name,
                     PyArray_NDIM(tmp));
        Py_DECREF(tmp);
        return NULL;
    }
    PyArrayObject *out = (PyArrayObject *)PyArray_NewLikeArray(tmp, NPY_CORDER, PyArray_DescrFromType(NPY_FLOAT32), 0);
    if (!out || PyArray_CopyInto(out, tmp) < 0) {
        Py_XDECREF(out);
        Py_DECREF(tmp);
        return NULL;
    }
    Py_DECREF(tmp);
    *V = PyArray_DIM(out, PyArray_NDIM(out) - 1);
    *B = PyArray_NDIM(out) == 2 ? PyArray_DIM(out, 0) : 1;
    if (*V > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: vocabulary of %lld entries is too large", name, (long long)*V);
        Py_DECREF(out);
        return NULL;
    }
    const float *z = (const float *)PyArray_DATA(out);
    int bad = 0;
    for (int64_t i = 0; i < *B * *V; i++) bad |= !(z[i] < INFINITY); /* NaN or +inf; one branch-free pass */
    for (int64_t i = 0; bad && i < *B * *V; i++) {
        if (isnan(z[i]) || z[i] == INFINITY) {
            PyErr_Format(PyExc_ValueError, "%s contains %s at row %lld, index %lld (only finite values and -inf are allowed)",
                         name, isnan(z[i]) ? "NaN" : "+inf", (long long)(i / *V), (long long)(i % *V));
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* Token histories [B, L] (or [L] when B == 1) as int32 in [0, V). */
static PyArrayObject *history_rows(PyObject *obj, const char *name, int64_t B, int64_t V, int64_t *L) {
    PyArrayObject *ids = as_i32(obj, name, 0, V);
    if (!ids) return NULL;
    int nd = PyArray_NDIM(ids);
    if (!((nd == 2 && PyArray_DIM(ids, 0) == B) || (nd == 1 && B == 1))) {
        PyErr_Format(PyExc_ValueError, "%s must have shape [%lld, L] to match the logits rows", name, (long long)B);
        Py_DECREF(ids);
        return NULL;
    }
    *L = PyArray_DIM(ids, nd - 1);
    return ids;
}

/* The generator state of B rows: uint64 [B, 4], writeable, C-contiguous. */
static PyArrayObject *rng_rows(PyObject *obj, int64_t B) {
    if (!PyArray_Check(obj) || PyArray_TYPE((PyArrayObject *)obj) != NPY_UINT64 ||
        PyArray_NDIM((PyArrayObject *)obj) != 2 || PyArray_DIM((PyArrayObject *)obj, 0) != B ||
        PyArray_DIM((PyArrayObject *)obj, 1) != 4 || !PyArray_ISCARRAY((PyArrayObject *)obj)) {
        PyErr_Format(PyExc_TypeError, "generator state must be a writeable C-contiguous uint64 array of shape (%lld, 4)",
                     (long long)B);
        return NULL;
    }
    Py_INCREF(obj);
    return (PyArrayObject *)obj;
}

/* A decoding workspace for rows of V: the module's cached one when free (so calls do not pay for
 * fresh pages), else a temporary one. Called with the GIL held; NULL with MemoryError on failure. */
static tfm_sampling_ws *ws_take(PyObject *module, int64_t V) {
    module_state *ms = get_state(module);
    if (!ms->ws_busy) {
        if (!ms->ws || ms->ws->cap < V) {
            if (!ms->ws && !(ms->ws = (tfm_sampling_ws *)PyMem_Calloc(1, sizeof(tfm_sampling_ws))))
                return (tfm_sampling_ws *)PyErr_NoMemory();
            tfm_sampling_ws_free(ms->ws);
            if (tfm_sampling_ws_init(ms->ws, V) != TFM_OK) return (tfm_sampling_ws *)PyErr_NoMemory();
        }
        ms->ws_busy = 1;
        return ms->ws;
    }
    tfm_sampling_ws *w = (tfm_sampling_ws *)PyMem_Calloc(1, sizeof(tfm_sampling_ws));
    if (!w || tfm_sampling_ws_init(w, V) != TFM_OK) {
        PyMem_Free(w);
        return (tfm_sampling_ws *)PyErr_NoMemory();
    }
    return w;
}

static void ws_give(PyObject *module, tfm_sampling_ws *w) {
    module_state *ms = get_state(module);
    if (!w) return;
    if (w == ms->ws) {
        ms->ws_busy = 0;
    } else {
        tfm_sampling_ws_free(w);
        PyMem_Free(w);
    }
}

static int int_param(PyObject *o, const char *name, long long lo, long long *out) {
    PyObject *idx = PyNumber_Index(o);
    if (!idx) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be an integer, got %R", name, o);
        return -1;
    }
    long long v = PyLong_AsLongLong(idx);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < lo) {
        PyErr_Format(PyExc_ValueError, "%s must be an integer >= %lld, got %lld", name, lo, v);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *sampling_status(tfm_status st, const char *what) {
    if (st == TFM_E_RANGE) PyErr_Format(PyExc_ValueError, "%s: a token id is outside [0, vocabulary size)", what);
    else if (st == TFM_E_ARG) PyErr_Format(PyExc_ValueError, "%s: a row has no finite logit or an argument is invalid", what);
    else raise_status(st, what);
    return NULL;
}

enum { F_TEMPERATURE, F_TOP_K, F_TOP_P, F_MIN_P, F_TYPICAL, F_EPSILON, F_ETA, F_TOP_N_SIGMA };

/* filter(kind, logits, value, min_tokens_to_keep=1, info=False) -> logits | (logits, kept[B], mass[B]) */
static PyObject *py_sampling_filter(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"kind", "logits", "value", "min_tokens_to_keep", "info", NULL};
    const char *kind_s;
    PyObject *lo, *vo, *mko = NULL;
    int want_info = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sOO|Op", kwlist, &kind_s, &lo, &vo, &mko, &want_info)) return NULL;
    static const char *names[] = {"temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
                                  "top_n_sigma"};
    int kind = -1;
    for (int i = 0; i < 8; i++)
        if (!strcmp(kind_s, names[i])) kind = i;
    if (kind < 0) {
        PyErr_Format(PyExc_ValueError, "unknown filter %s", kind_s);
        return NULL;
    }
    long long min_keep = 1, k = 0;
    double x = 0.0;
    if (mko && mko != Py_None && int_param(mko, "min_tokens_to_keep", 1, &min_keep) < 0) return NULL;
    if (kind == F_TOP_K) {
        if (int_param(vo, "top_k", 0, &k) < 0) return NULL;
    } else {
        x = PyFloat_AsDouble(vo);
        if (x == -1.0 && PyErr_Occurred()) return NULL;
        int ok = 1;
        const char *range = "";
        switch (kind) {
        case F_TEMPERATURE: ok = x >= 0.0 && x < INFINITY; range = "a finite float >= 0 (0 = greedy)"; break;
        case F_TOP_P: ok = x > 0.0 && x <= 1.0; range = "in (0, 1]"; break;
        case F_MIN_P: ok = x >= 0.0 && x <= 1.0; range = "in [0, 1]"; break;
        case F_TYPICAL: ok = x > 0.0 && x <= 1.0; range = "in (0, 1] (1 = off)"; break;
        case F_EPSILON:
        case F_ETA: ok = x >= 0.0 && x < 1.0; range = "in [0, 1) (0 = off)"; break;
        case F_TOP_N_SIGMA: ok = x > 0.0 && x < INFINITY; range = "a finite float > 0"; break;
        }
        if (!ok) { /* NaN fails every comparison above */
            PyErr_Format(PyExc_ValueError, "%s must be %s, got %R", names[kind], range, vo);
            return NULL;
        }
        if (kind == F_TEMPERATURE && x > 0.0 && (float)x == 0.0f) {
            PyErr_Format(PyExc_ValueError, "temperature %R underflows float32", vo);
            return NULL;
        }
    }
    int64_t B, V;
    PyArrayObject *z = NULL, *kept = NULL, *mass = NULL;
    PyObject *result = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V))) goto fail;
    if (want_info) {
        npy_intp d[1] = {B};
        if (!(kept = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_INT64))) goto fail;
        if (!(mass = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_FLOAT64))) goto fail;
    }
    tfm_status st = TFM_OK;
    float *zd = (float *)PyArray_DATA(z);
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    st = TFM_OK;
    for (int64_t b = 0; b < B && st == TFM_OK; b++) {
        float *row = zd + b * V;
        tfm_filter_info info = {0, 1.0}, *ip = want_info ? &info : NULL;
        switch (kind) {
        case F_TEMPERATURE: {
            st = tfm_temperature_apply(row, V, (float)x);
            if (ip) {
                int64_t fin = 0;
                for (int64_t i = 0; i < V; i++) fin += row[i] != -INFINITY;
                info.kept = fin, info.mass = fin ? 1.0 : 0.0;
            }
            break;
        }
        case F_TOP_K: st = tfm_top_k_apply(row, V, k, min_keep, ws, ip); break;
        case F_TOP_P: st = tfm_top_p_apply(row, V, x, min_keep, ws, ip); break;
        case F_MIN_P: st = tfm_min_p_apply(row, V, (float)x, min_keep, ws, ip); break;
        case F_TYPICAL: st = tfm_typical_apply(row, V, (float)x, min_keep, ws, ip); break;
        case F_EPSILON: st = tfm_epsilon_apply(row, V, (float)x, min_keep, ws, ip); break;
        case F_ETA: st = tfm_eta_apply(row, V, (float)x, min_keep, ws, ip); break;
        case F_TOP_N_SIGMA: st = tfm_top_n_sigma_apply(row, V, (float)x, ip); break;
        }
        if (want_info) {
            ((int64_t *)PyArray_DATA(kept))[b] = info.kept;
            ((double *)PyArray_DATA(mass))[b] = info.mass;
        }
    }
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (st != TFM_OK) {
        if (kind == F_TEMPERATURE && st == TFM_E_ARG)
            PyErr_Format(PyExc_ValueError, "temperature %R is so small that a logit overflowed to +inf", vo);
        else
            sampling_status(st, names[kind]);
        goto fail;
    }
    if (want_info) result = PyTuple_Pack(3, (PyObject *)z, (PyObject *)kept, (PyObject *)mass);
    else {
        result = (PyObject *)z;
        z = NULL;
    }
fail:
    Py_XDECREF(z), Py_XDECREF(kept), Py_XDECREF(mass);
    return result;
}

enum { H_REPETITION, H_FREQ_PRESENCE, H_NGRAM };

/* Penalties that read the history: kind 'repetition' (a = penalty), 'frequency_presence'
 * (a = frequency, b = presence), 'no_repeat_ngram' (n). */
static PyObject *py_sampling_history(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"kind", "logits", "input_ids", "a", "b", NULL};
    const char *kind_s;
    PyObject *lo, *io, *ao, *bo = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sOOO|O", kwlist, &kind_s, &lo, &io, &ao, &bo)) return NULL;
    int kind;
    if (!strcmp(kind_s, "repetition")) kind = H_REPETITION;
    else if (!strcmp(kind_s, "frequency_presence")) kind = H_FREQ_PRESENCE;
    else if (!strcmp(kind_s, "no_repeat_ngram")) kind = H_NGRAM;
    else {
        PyErr_Format(PyExc_ValueError, "unknown penalty %s", kind_s);
        return NULL;
    }
    double a = 0.0, bv = 0.0;
    long long ng = 0;
    if (kind == H_NGRAM) {
        if (int_param(ao, "ngram_size", 1, &ng) < 0) return NULL;
    } else {
        a = PyFloat_AsDouble(ao);
        if (a == -1.0 && PyErr_Occurred()) return NULL;
        if (bo) {
            bv = PyFloat_AsDouble(bo);
            if (bv == -1.0 && PyErr_Occurred()) return NULL;
        }
        if (kind == H_REPETITION && !(a > 0.0 && a < INFINITY && (float)a > 0.0f)) {
            PyErr_Format(PyExc_ValueError, "repetition_penalty must be a finite float > 0, got %R", ao);
            return NULL;
        }
        if (kind == H_FREQ_PRESENCE && !isfinite(a)) {
            PyErr_Format(PyExc_ValueError, "frequency_penalty must be finite, got %R", ao);
            return NULL;
        }
        if (kind == H_FREQ_PRESENCE && !isfinite(bv)) {
            PyErr_Format(PyExc_ValueError, "presence_penalty must be finite, got %R", bo);
            return NULL;
        }
    }
    int64_t B, V, L;
    PyArrayObject *z = NULL, *ids = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V))) goto fail;
    if (!(ids = history_rows(io, "input_ids", B, V, &L))) goto fail;
    tfm_status st;
    float *zd = (float *)PyArray_DATA(z);
    const int32_t *hd = (const int32_t *)PyArray_DATA(ids);
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    st = TFM_OK;
    for (int64_t b = 0; b < B && st == TFM_OK; b++) {
        float *row = zd + b * V;
        const int32_t *h = hd + b * L;
        if (kind == H_REPETITION) st = tfm_repetition_penalty_apply(row, V, h, L, (float)a, ws);
        else if (kind == H_FREQ_PRESENCE) st = tfm_frequency_presence_apply(row, V, h, L, (float)a, (float)bv, ws);
        else st = tfm_no_repeat_ngram_apply(row, V, h, L, ng);
    }
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (st != TFM_OK) {
        sampling_status(st, kind_s);
        goto fail;
    }
    Py_DECREF(ids);
    return (PyObject *)z;
fail:
    Py_XDECREF(z), Py_XDECREF(ids);
    return NULL;
}

/* sequence_bias(logits, input_ids, ids, offsets, bias, name) — sequences concatenated in ids,
 * sequence k = ids[offsets[k]:offsets[k+1]]; name labels errors (sequence_bias, bad_words_ids). */
static PyObject *py_sampling_sequence_bias(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"logits", "input_ids", "ids", "offsets", "bias", "name", NULL};
    PyObject *lo, *io, *so, *oo, *bo;
    const char *name = "sequence_bias";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|s", kwlist, &lo, &io, &so, &oo, &bo, &name)) return NULL;
    int64_t B, V, L;
    PyArrayObject *z = NULL, *ids = NULL, *seq = NULL, *off = NULL, *bias = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V))) goto fail;
    if (!(ids = history_rows(io, "input_ids", B, V, &L))) goto fail;
    if (!(seq = as_i32(so, name, 0, V))) goto fail;
    if (!(off = (PyArrayObject *)PyArray_FROM_OTF(oo, NPY_INT64, NPY_ARRAY_IN_ARRAY))) goto fail;
    if (!(bias = as_f32(bo, name))) goto fail;
    const int64_t count = PyArray_SIZE(bias);
    const int64_t *od = (const int64_t *)PyArray_DATA(off);
    if (PyArray_NDIM(seq) != 1 || PyArray_NDIM(off) != 1 || PyArray_NDIM(bias) != 1 || PyArray_SIZE(off) != count + 1 ||
        od[0] != 0 || od[count] != PyArray_SIZE(seq)) {
        PyErr_Format(PyExc_ValueError, "%s: malformed sequence table", name);
        goto fail;
    }
    for (int64_t k = 0; k < count; k++) {
        if (od[k + 1] <= od[k]) {
            PyErr_Format(PyExc_ValueError, "%s: sequence %lld is empty", name, (long long)k);
            goto fail;
        }
        const float bk = ((const float *)PyArray_DATA(bias))[k];
        if (isnan(bk) || bk == INFINITY) {
            PyErr_Format(PyExc_ValueError, "%s: bias of sequence %lld must be finite or -inf", name, (long long)k);
            goto fail;
        }
    }
    tfm_sequence_bias sb = {(const int32_t *)PyArray_DATA(seq), od, (const float *)PyArray_DATA(bias), count};
    tfm_status st;
    float *zd = (float *)PyArray_DATA(z);
    const int32_t *hd = (const int32_t *)PyArray_DATA(ids);
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    st = TFM_OK;
    for (int64_t b = 0; b < B && st == TFM_OK; b++) st = tfm_sequence_bias_apply(zd + b * V, V, hd + b * L, L, &sb, ws);
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (st != TFM_OK) {
        sampling_status(st, name);
        goto fail;
    }
    Py_DECREF(ids), Py_DECREF(seq), Py_DECREF(off), Py_DECREF(bias);
    return (PyObject *)z;
fail:
    Py_XDECREF(z), Py_XDECREF(ids), Py_XDECREF(seq), Py_XDECREF(off), Py_XDECREF(bias);
    return NULL;
}

/* suppress(logits, tokens, name='suppress_tokens', lengths=None, min_length=0): tokens → −inf
 * in every row, or only in rows with lengths[b] < min_length (MinLength / MinNewTokens). */
static PyObject *py_sampling_suppress(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"logits", "tokens", "name", "lengths", "min_length", NULL};
    PyObject *lo, *to, *leno = Py_None;
    const char *name = "suppress_tokens";
    long long min_length = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|sOL", kwlist, &lo, &to, &name, &leno, &min_length)) return NULL;
    int64_t B, V;
    PyArrayObject *z = NULL, *tok = NULL, *len = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V))) goto fail;
    if (!(tok = as_i32(to, name, 0, V))) goto fail;
    if (leno != Py_None) {
        if (!(len = (PyArrayObject *)PyArray_FROM_OTF(leno, NPY_INT64, NPY_ARRAY_IN_ARRAY))) goto fail;
        if (PyArray_SIZE(len) != B || min_length < 0) {
            PyErr_SetString(PyExc_ValueError, "lengths must hold one length per row and min_length must be >= 0");
            goto fail;
        }
    }
    float *zd = (float *)PyArray_DATA(z);
    const int32_t *td = (const int32_t *)PyArray_DATA(tok);
    const int64_t nt = PyArray_SIZE(tok);
    tfm_status st = TFM_OK;
    for (int64_t b = 0; b < B && st == TFM_OK; b++) {
        if (len) st = tfm_min_length_apply(zd + b * V, V, ((const int64_t *)PyArray_DATA(len))[b], min_length, td, nt);
        else st = tfm_tokens_suppress(zd + b * V, V, td, nt);
    }
    if (st != TFM_OK) {
        sampling_status(st, name);
        goto fail;
    }
    Py_DECREF(tok), Py_XDECREF(len);
    return (PyObject *)z;
fail:
    Py_XDECREF(z), Py_XDECREF(tok), Py_XDECREF(len);
    return NULL;
}

/* softmax(logits, log=False) */
static PyObject *py_sampling_softmax(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"logits", "log", NULL};
    PyObject *lo;
    int lg = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p", kwlist, &lo, &lg)) return NULL;
    int64_t B, V;
    PyArrayObject *z = logits_copy(lo, "logits", &B, &V);
    if (!z) return NULL;
    float *zd = (float *)PyArray_DATA(z);
    tfm_status st = TFM_OK;
    int64_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t b = 0; b < B && st == TFM_OK; b++) {
        st = lg ? tfm_log_softmax(zd + b * V, zd + b * V, V) : tfm_softmax(zd + b * V, zd + b * V, V);
        if (st != TFM_OK) bad = b;
    }
    Py_END_ALLOW_THREADS
    if (st != TFM_OK) {
        PyErr_Format(PyExc_ValueError, "logits row %lld is all -inf: no distribution", (long long)bad);
        Py_DECREF(z);
        return NULL;
    }
    return (PyObject *)z;
}

/* argmax(logits) -> int64 [B] (first index on ties) */
static PyObject *py_sampling_argmax(PyObject *module, PyObject *args) {
    PyObject *lo;
    if (!PyArg_ParseTuple(args, "O", &lo)) return NULL;
    int64_t B, V;
    PyArrayObject *z = logits_copy(lo, "logits", &B, &V);
    if (!z) return NULL;
    npy_intp d[1] = {B};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_INT64);
    if (out) {
        const float *zd = (const float *)PyArray_DATA(z);
        int64_t *o = (int64_t *)PyArray_DATA(out);
        for (int64_t b = 0; b < B; b++) o[b] = tfm_argmax(zd + b * V, V);
    }
    Py_DECREF(z);
    return (PyObject *)out;
}

/* top_indices(logits, k) -> int64 [B, k], descending, lower index first on ties */
static PyObject *py_sampling_top_indices(PyObject *module, PyObject *args) {
    PyObject *lo, *ko;
    if (!PyArg_ParseTuple(args, "OO", &lo, &ko)) return NULL;
    long long k;
    if (int_param(ko, "k", 1, &k) < 0) return NULL;
    int64_t B, V;
    PyArrayObject *z = NULL, *out = NULL;
    int32_t *buf = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V))) goto fail;
    if (k > V) {
        PyErr_Format(PyExc_ValueError, "k must be <= the vocabulary size %lld, got %lld", (long long)V, k);
        goto fail;
    }
    npy_intp d[2] = {B, k};
    if (!(out = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_INT64))) goto fail;
    if (!(buf = (int32_t *)PyMem_Malloc((size_t)k * sizeof(int32_t)))) {
        PyErr_NoMemory();
        goto fail;
    }
    tfm_status st;
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    st = TFM_OK;
    for (int64_t b = 0; b < B && st == TFM_OK; b++) {
        st = tfm_top_indices(buf, (const float *)PyArray_DATA(z) + b * V, V, k, ws);
        for (int64_t i = 0; i < k; i++) ((int64_t *)PyArray_DATA(out))[b * k + i] = buf[i];
    }
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (st != TFM_OK) {
        sampling_status(st, "top_indices");
        Py_CLEAR(out);
    }
fail:
    PyMem_Free(buf);
    Py_XDECREF(z);
    return (PyObject *)out;
}

/* rng_state(seeds, streams) -> uint64 [B, 4]: row b seeded from (seeds[b], streams[b]) */
static PyObject *py_rng_state(PyObject *module, PyObject *args) {
    PyObject *so, *to;
    if (!PyArg_ParseTuple(args, "OO", &so, &to)) return NULL;
    PyArrayObject *s = (PyArrayObject *)PyArray_FROM_OTF(so, NPY_UINT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    PyArrayObject *t = s ? (PyArrayObject *)PyArray_FROM_OTF(to, NPY_UINT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST)
                         : NULL;
    PyArrayObject *out = NULL;
    if (!s || !t) goto done;
    if (PyArray_NDIM(s) != 1 || PyArray_SIZE(s) != PyArray_SIZE(t)) {
        PyErr_SetString(PyExc_ValueError, "seeds and streams must be 1-D of equal length");
        goto done;
    }
    npy_intp d[2] = {PyArray_SIZE(s), 4};
    if (!(out = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_UINT64))) goto done;
    for (npy_intp b = 0; b < d[0]; b++) {
        tfm_rng r;
        tfm_rng_seed(&r, ((const uint64_t *)PyArray_DATA(s))[b], ((const uint64_t *)PyArray_DATA(t))[b]);
        memcpy((uint64_t *)PyArray_DATA(out) + 4 * b, r.s, sizeof r.s);
    }
done:
    Py_XDECREF(s), Py_XDECREF(t);
    return (PyObject *)out;
}

/* rng_uniform(state [B,4], n) -> float64 [B, n]; gumbel=True gives Gumbel draws */
static PyObject *py_rng_uniform(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"state", "n", "gumbel", NULL};
    PyObject *so;
    Py_ssize_t n;
    int gumbel = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "On|p", kwlist, &so, &n, &gumbel)) return NULL;
    if (n < 0 || !PyArray_Check(so)) {
        PyErr_SetString(PyExc_ValueError, "rng_uniform needs a state array and n >= 0");
        return NULL;
    }
    const int64_t B = PyArray_NDIM((PyArrayObject *)so) == 2 ? PyArray_DIM((PyArrayObject *)so, 0) : -1;
    PyArrayObject *st = rng_rows(so, B);
    if (!st) return NULL;
    npy_intp d[2] = {B, n};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_FLOAT64);
    if (out) {
        for (int64_t b = 0; b < B; b++) {
            tfm_rng *r = (tfm_rng *)((uint64_t *)PyArray_DATA(st) + 4 * b);
            for (Py_ssize_t i = 0; i < n; i++)
                ((double *)PyArray_DATA(out))[b * n + i] = gumbel ? tfm_rng_gumbel(r) : tfm_rng_uniform(r);
        }
    }
    Py_DECREF(st);
    return (PyObject *)out;
}

/* sample(scores, state, num_samples=1, replacement=True, probs=False) -> int64 [B, num_samples] */
static PyObject *py_sampling_sample(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"scores", "state", "num_samples", "replacement", "probs", NULL};
    PyObject *lo, *so;
    Py_ssize_t k = 1;
    int repl = 1, probs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|npp", kwlist, &lo, &so, &k, &repl, &probs)) return NULL;
    if (k < 1) {
        PyErr_Format(PyExc_ValueError, "num_samples must be >= 1, got %zd", k);
        return NULL;
    }
    int64_t B, V;
    PyArrayObject *z = NULL, *st = NULL, *out = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, probs ? "probs" : "logits", &B, &V))) goto fail;
    if (!(st = rng_rows(so, B))) goto fail;
    if (probs) {
        const float *zd = (const float *)PyArray_DATA(z);
        for (int64_t i = 0; i < B * V; i++)
            if (zd[i] < 0.0f) {
                PyErr_Format(PyExc_ValueError, "probs must be >= 0, got %g at row %lld, index %lld", (double)zd[i],
                             (long long)(i / V), (long long)(i % V));
                goto fail;
            }
    }
    npy_intp d[2] = {B, k};
    if (!(out = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_INT64))) goto fail;
    tfm_status rs;
    int64_t bad = -1;
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    rs = TFM_OK;
    for (int64_t b = 0; b < B && rs == TFM_OK; b++) {
        tfm_rng *r = (tfm_rng *)((uint64_t *)PyArray_DATA(st) + 4 * b);
        rs = tfm_sample_n((int64_t *)PyArray_DATA(out) + b * k, k, repl, (const float *)PyArray_DATA(z) + b * V, V,
                          probs, r, ws);
        if (rs != TFM_OK) bad = b;
    }
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (rs != TFM_OK) {
        if (rs == TFM_E_ARG)
            PyErr_Format(PyExc_ValueError,
                         "row %lld has %s (all logits -inf, all probabilities 0, or fewer than num_samples = %zd "
                         "possible tokens without replacement)",
                         (long long)bad, "no distribution to sample", k);
        else
            raise_status(rs, "sample");
        goto fail;
    }
    Py_DECREF(z), Py_DECREF(st);
    return (PyObject *)out;
fail:
    Py_XDECREF(z), Py_XDECREF(st), Py_XDECREF(out);
    return NULL;
}

/* gumbel(logits, state) -> logits + Gumbel noise (−inf stays) */
static PyObject *py_sampling_gumbel(PyObject *module, PyObject *args) {
    PyObject *lo, *so;
    if (!PyArg_ParseTuple(args, "OO", &lo, &so)) return NULL;
    int64_t B, V;
    PyArrayObject *z = logits_copy(lo, "logits", &B, &V), *st = NULL;
    if (!z || !(st = rng_rows(so, B))) {
        Py_XDECREF(z);
        return NULL;
    }
    for (int64_t b = 0; b < B; b++)
        tfm_gumbel_perturb((float *)PyArray_DATA(z) + b * V, V, (tfm_rng *)((uint64_t *)PyArray_DATA(st) + 4 * b));
    Py_DECREF(st);
    return (PyObject *)z;
}

/* xtc(logits, state, probability, threshold, min_keep=1, info=False) */
static PyObject *py_sampling_xtc(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"logits", "state", "probability", "threshold", "min_keep", "info", NULL};
    PyObject *lo, *so;
    double prob, thr;
    long long min_keep = 1;
    int want_info = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOdd|Lp", kwlist, &lo, &so, &prob, &thr, &min_keep, &want_info))
        return NULL;
    if (!(prob >= 0.0 && prob <= 1.0)) {
        PyErr_Format(PyExc_ValueError, "xtc_probability must be in [0, 1], got %g", prob);
        return NULL;
    }
    if (!(thr >= 0.0 && thr <= 1.0)) {
        PyErr_Format(PyExc_ValueError, "xtc_threshold must be in [0, 1], got %g", thr);
        return NULL;
    }
    if (min_keep < 1) {
        PyErr_Format(PyExc_ValueError, "min_keep must be >= 1, got %lld", min_keep);
        return NULL;
    }
    int64_t B, V;
    PyArrayObject *z = NULL, *st = NULL, *kept = NULL, *mass = NULL;
    PyObject *result = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V)) || !(st = rng_rows(so, B))) goto fail;
    npy_intp d[1] = {B};
    if (!(kept = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_INT64))) goto fail;
    if (!(mass = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_FLOAT64))) goto fail;
    tfm_status rs;
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    rs = TFM_OK;
    for (int64_t b = 0; b < B && rs == TFM_OK; b++) {
        tfm_filter_info info;
        rs = tfm_xtc_apply((float *)PyArray_DATA(z) + b * V, V, (float)prob, (float)thr, min_keep,
                           (tfm_rng *)((uint64_t *)PyArray_DATA(st) + 4 * b), ws, &info);
        ((int64_t *)PyArray_DATA(kept))[b] = info.kept;
        ((double *)PyArray_DATA(mass))[b] = info.mass;
    }
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (rs != TFM_OK) {
        sampling_status(rs, "xtc");
        goto fail;
    }
    if (want_info) result = PyTuple_Pack(3, (PyObject *)z, (PyObject *)kept, (PyObject *)mass);
    else {
        result = (PyObject *)z;
        z = NULL;
    }
fail:
    Py_XDECREF(z), Py_XDECREF(st), Py_XDECREF(kept), Py_XDECREF(mass);
    return result;
}

/* dry(logits, input_ids, multiplier, base, allowed_length, last_n, breaker_ids, breaker_offsets) */
static PyObject *py_sampling_dry(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"logits", "input_ids", "multiplier", "base", "allowed_length", "last_n",
                             "breaker_ids", "breaker_offsets", NULL};
    PyObject *lo, *io, *bio, *boo;
    double mult, base;
    long long allowed, last_n;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOddLLOO", kwlist, &lo, &io, &mult, &base, &allowed, &last_n, &bio, &boo))
        return NULL;
    if (!(mult >= 0.0 && mult < INFINITY)) {
        PyErr_Format(PyExc_ValueError, "dry_multiplier must be a finite float >= 0, got %g", mult);
        return NULL;
    }
    if (!(base >= 1.0 && base < INFINITY)) {
        PyErr_Format(PyExc_ValueError, "dry_base must be a finite float >= 1, got %g", base);
        return NULL;
    }
    if (allowed < 1) {
        PyErr_Format(PyExc_ValueError, "dry_allowed_length must be >= 1, got %lld", allowed);
        return NULL;
    }
    int64_t B, V, L;
    PyArrayObject *z = NULL, *ids = NULL, *bi = NULL, *bo = NULL;
    int32_t *zbuf = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V))) goto fail;
    if (!(ids = history_rows(io, "input_ids", B, V, &L))) goto fail;
    if (!(bi = as_i32(bio, "sequence_breakers", 0, V))) goto fail;
    if (!(bo = (PyArrayObject *)PyArray_FROM_OTF(boo, NPY_INT64, NPY_ARRAY_IN_ARRAY))) goto fail;
    const int64_t nb = PyArray_SIZE(bo) - 1;
    const int64_t *bod = (const int64_t *)PyArray_DATA(bo);
    if (PyArray_NDIM(bo) != 1 || nb < 0 || bod[0] != 0 || bod[nb] != PyArray_SIZE(bi)) {
        PyErr_SetString(PyExc_ValueError, "sequence_breakers: malformed sequence table");
        goto fail;
    }
    for (int64_t k = 0; k < nb; k++)
        if (bod[k + 1] <= bod[k]) {
            PyErr_Format(PyExc_ValueError, "sequence_breakers: breaker %lld is empty", (long long)k);
            goto fail;
        }
    if (!(zbuf = (int32_t *)PyMem_Malloc((size_t)(L > 0 ? L : 1) * sizeof(int32_t)))) {
        PyErr_NoMemory();
        goto fail;
    }
    tfm_dry_params p = {(float)mult, (float)base, allowed, last_n, (const int32_t *)PyArray_DATA(bi), bod, nb};
    tfm_status rs;
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    rs = TFM_OK;
    for (int64_t b = 0; b < B && rs == TFM_OK; b++)
        rs = tfm_dry_apply((float *)PyArray_DATA(z) + b * V, V, (const int32_t *)PyArray_DATA(ids) + b * L, L, &p, zbuf,
                           ws);
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (rs != TFM_OK) {
        sampling_status(rs, "dry");
        goto fail;
    }
    PyMem_Free(zbuf);
    Py_DECREF(ids), Py_DECREF(bi), Py_DECREF(bo);
    return (PyObject *)z;
fail:
    PyMem_Free(zbuf);
    Py_XDECREF(z), Py_XDECREF(ids), Py_XDECREF(bi), Py_XDECREF(bo);
    return NULL;
}

/* mirostat(logits, state, mu, version, tau, eta, m=100) -> (truncated logits, tokens int64 [B]);
 * mu: writeable float32 [B], updated in place. */
static PyObject *py_sampling_mirostat(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"logits", "state", "mu", "version", "tau", "eta", "m", NULL};
    PyObject *lo, *so, *mo;
    int version, m = 100;
    double tau, eta;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOidd|i", kwlist, &lo, &so, &mo, &version, &tau, &eta, &m)) return NULL;
    if (version != 1 && version != 2) {
        PyErr_Format(PyExc_ValueError, "mirostat version must be 1 or 2, got %d", version);
        return NULL;
    }
    if (!isfinite(tau) || tau < 0.0) {
        PyErr_Format(PyExc_ValueError, "mirostat_tau must be a finite float >= 0, got %g", tau);
        return NULL;
    }
    if (!isfinite(eta) || eta < 0.0) {
        PyErr_Format(PyExc_ValueError, "mirostat_eta must be a finite float >= 0, got %g", eta);
        return NULL;
    }
    if (m < 2) {
        PyErr_Format(PyExc_ValueError, "mirostat m must be >= 2, got %d", m);
        return NULL;
    }
    int64_t B, V;
    PyArrayObject *z = NULL, *st = NULL, *tok = NULL;
    PyObject *result = NULL;
    tfm_sampling_ws *ws = NULL;
    if (!(z = logits_copy(lo, "logits", &B, &V)) || !(st = rng_rows(so, B))) goto fail;
    if (!PyArray_Check(mo) || PyArray_TYPE((PyArrayObject *)mo) != NPY_FLOAT32 || PyArray_SIZE((PyArrayObject *)mo) != B ||
        !PyArray_ISCARRAY((PyArrayObject *)mo)) {
        PyErr_Format(PyExc_TypeError, "mu must be a writeable C-contiguous float32 array of %lld entries", (long long)B);
        goto fail;
    }
    npy_intp d[1] = {B};
    if (!(tok = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_INT64))) goto fail;
    tfm_status rs;
    int64_t bad = -1;
    if (!(ws = ws_take(module, V))) goto fail;
    Py_BEGIN_ALLOW_THREADS
    rs = TFM_OK;
    for (int64_t b = 0; b < B && rs == TFM_OK; b++) {
        float *row = (float *)PyArray_DATA(z) + b * V;
        float *mu = (float *)PyArray_DATA((PyArrayObject *)mo) + b;
        tfm_rng *r = (tfm_rng *)((uint64_t *)PyArray_DATA(st) + 4 * b);
        int64_t *t = (int64_t *)PyArray_DATA(tok) + b;
        rs = version == 1 ? tfm_mirostat_sample(t, row, V, (float)tau, (float)eta, m, mu, r, ws)
                          : tfm_mirostat_v2_sample(t, row, V, (float)tau, (float)eta, mu, r, ws);
        if (rs != TFM_OK) bad = b;
    }
    Py_END_ALLOW_THREADS
    ws_give(module, ws);
    ws = NULL;
    if (rs != TFM_OK) {
        if (rs == TFM_E_ARG) PyErr_Format(PyExc_ValueError, "mirostat: row %lld has no finite logit (or mu is not finite)", (long long)bad);
        else raise_status(rs, "mirostat");
        goto fail;
    }
    result = PyTuple_Pack(2, (PyObject *)z, (PyObject *)tok);
fail:
    Py_XDECREF(z), Py_XDECREF(st), Py_XDECREF(tok);
    return result;
}
/* ============================== end of Decoding: processors and samplers ===================== */

static PyObject *py_live_generators(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSsize_t(get_state(module)->live_generators);
}

static PyMethodDef module_methods[] = {
    {"live_generators", py_live_generators, METH_NOARGS, "number of Generators whose C state is still allocated"},
    {"select_isa", py_select_isa, METH_VARARGS, "select_isa(name='auto') -> the ISA path now in use"},
    {"linear", (PyCFunction)(void (*)(void))py_linear, METH_VARARGS | METH_KEYWORDS,
     "linear(x, w, bias=None, naive=False, repeat=1) -> x @ w.T + bias (packed GEMM, or its scalar twin)"},
    {"activation", (PyCFunction)(void (*)(void))py_activation, METH_VARARGS | METH_KEYWORDS,
     "activation(x, act, scalar=False) -> act(x)"},
    {"to_f32", py_to_f32, METH_VARARGS, "to_f32(array, dtype) -> float32 copy"},
    {"max_threads", py_max_threads, METH_NOARGS, "number of threads a kernel call uses"},
    {"set_num_threads", py_set_num_threads, METH_VARARGS,
     "set_num_threads(n) -> threads now used (at most OMP_NUM_THREADS / the cores; 0 = all)"},
    /* ---- Decoding: processors and samplers (tfm.sampling) ---- */
    {"sampling_filter", (PyCFunction)(void (*)(void))py_sampling_filter, METH_VARARGS | METH_KEYWORDS,
     "sampling_filter(kind, logits, value, min_tokens_to_keep=1, info=False) -> logits or (logits, kept, mass)"},
    {"sampling_history", (PyCFunction)(void (*)(void))py_sampling_history, METH_VARARGS | METH_KEYWORDS,
     "sampling_history(kind, logits, input_ids, a, b=0) -> logits ('repetition', 'frequency_presence', "
     "'no_repeat_ngram')"},
    {"sampling_sequence_bias", (PyCFunction)(void (*)(void))py_sampling_sequence_bias, METH_VARARGS | METH_KEYWORDS,
     "sampling_sequence_bias(logits, input_ids, ids, offsets, bias, name='sequence_bias') -> logits"},
    {"sampling_suppress", (PyCFunction)(void (*)(void))py_sampling_suppress, METH_VARARGS | METH_KEYWORDS,
     "sampling_suppress(logits, tokens, name='suppress_tokens', lengths=None, min_length=0) -> logits"},
    {"sampling_softmax", (PyCFunction)(void (*)(void))py_sampling_softmax, METH_VARARGS | METH_KEYWORDS,
     "sampling_softmax(logits, log=False) -> probabilities or log-probabilities"},
    {"sampling_argmax", py_sampling_argmax, METH_VARARGS, "sampling_argmax(logits) -> int64 [B]"},
    {"sampling_top_indices", py_sampling_top_indices, METH_VARARGS, "sampling_top_indices(logits, k) -> int64 [B, k]"},
    {"rng_state", py_rng_state, METH_VARARGS, "rng_state(seeds, streams) -> uint64 [B, 4] generator states"},
    {"rng_uniform", (PyCFunction)(void (*)(void))py_rng_uniform, METH_VARARGS | METH_KEYWORDS,
     "rng_uniform(state, n, gumbel=False) -> float64 [B, n] draws (state advanced)"},
    {"sampling_sample", (PyCFunction)(void (*)(void))py_sampling_sample, METH_VARARGS | METH_KEYWORDS,
     "sampling_sample(scores, state, num_samples=1, replacement=True, probs=False) -> int64 [B, num_samples]"},
    {"sampling_gumbel", py_sampling_gumbel, METH_VARARGS, "sampling_gumbel(logits, state) -> logits + Gumbel noise"},
    {"sampling_xtc", (PyCFunction)(void (*)(void))py_sampling_xtc, METH_VARARGS | METH_KEYWORDS,
     "sampling_xtc(logits, state, probability, threshold, min_keep=1, info=False) -> logits"},
    {"sampling_dry", (PyCFunction)(void (*)(void))py_sampling_dry, METH_VARARGS | METH_KEYWORDS,
     "sampling_dry(logits, input_ids, multiplier, base, allowed_length, last_n, breaker_ids, breaker_offsets)"},
    {"sampling_mirostat", (PyCFunction)(void (*)(void))py_sampling_mirostat, METH_VARARGS | METH_KEYWORDS,
     "sampling_mirostat(logits, state, mu, version, tau, eta, m=100) -> (logits, tokens)"},
    /* ---- end of Decoding ---- */
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
    s->generator_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Generator_spec, NULL);
    if (!s->generator_type || PyModule_AddType(m, s->generator_type) < 0) return -1;
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
    Py_VISIT(s->generator_type);
    return 0;
}

static int module_clear(PyObject *m) {
    module_state *s = get_state(m);
    Py_CLEAR(s->model_type);
    Py_CLEAR(s->cache_type);
    Py_CLEAR(s->generator_type);
    if (s->ws && !s->ws_busy) {
        tfm_sampling_ws_free(s->ws);
        PyMem_Free(s->ws);
        s->ws = NULL;
    }
    return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

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
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__tfmcore(void) { return PyModuleDef_Init(&tfmcore_module); }
