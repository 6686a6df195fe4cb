// The memory behind tensor buffers (see src/tensor/memory.ts and src/tensor/allocator.ts).
//
// freeArrayBuffer(ab): detaches an ArrayBuffer, which frees its backing store now instead of at
//   the next garbage collection. The buffer pool calls it for blocks it drops (evicted, or released
//   with pooling off): V8 only collects ArrayBuffers when external memory has grown by tens of MB,
//   so dropped blocks would otherwise pile up and RSS would swing with the GC's timing.
// mallocTune(mmapThresholdBytes): fixes glibc's mmap threshold. By default glibc raises it each
//   time an mmapped block is freed (up to 32 MiB), after which tensor-sized blocks come from the
//   brk heap, whose free holes are rarely returned to the system: RSS creeps up over a long run of
//   varying sizes. A fixed threshold keeps large blocks in their own mappings (unmapped on free).
// mallocInfo(): the C allocator's counters (glibc mallinfo2), to tell its free-but-held bytes
//   from memory in use.
// mallocTrim(): returns free heap pages to the system (glibc malloc_trim).
// On other C libraries the malloc functions do nothing (mallocInfo returns null).
// N-API only (like napi.cc, left out of the WebAssembly build): registered by napi.cc's Init.
#include <napi.h>

#include <cstdint>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dpo {

static Napi::Value FreeArrayBufferJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "freeArrayBuffer: argument 0 must be an ArrayBuffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  bool detached = false;
  napi_status st = napi_is_detached_arraybuffer(env, ab, &detached);
  if (st != napi_ok || detached) return Napi::Boolean::New(env, false);  // already detached
  st = napi_detach_arraybuffer(env, ab);
  if (st != napi_ok) {
    // Not detachable (e.g. a WebAssembly memory): leave it to the GC.
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    return Napi::Boolean::New(env, false);
  }
  return Napi::Boolean::New(env, true);
}

static Napi::Value MallocTuneJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(__GLIBC__)
  int64_t bytes = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : 0;
  if (bytes <= 0 || bytes > (int64_t(1) << 30)) {
    Napi::RangeError::New(env, "mallocTune: the mmap threshold must be in (0, 1 GiB]").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1);
#else
  return Napi::Boolean::New(env, false);
#endif
}

static Napi::Value MallocInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 m = mallinfo2();
  Napi::Object o = Napi::Object::New(env);
  // Bytes obtained with brk/sbrk and in the other arenas; in mmapped blocks; in use; free but held.
  o.Set("arena", Napi::Number::New(env, static_cast<double>(m.arena)));
  o.Set("mmapped", Napi::Number::New(env, static_cast<double>(m.hblkhd)));
  o.Set("inUse", Napi::Number::New(env, static_cast<double>(m.uordblks)));
  o.Set("free", Napi::Number::New(env, static_cast<double>(m.fordblks)));
  return o;
#else
  return env.Null();
#endif
}

static Napi::Value MallocTrimJs(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("freeArrayBuffer", Napi::Function::New(env, FreeArrayBufferJs, "freeArrayBuffer"));
  exports.Set("mallocTune", Napi::Function::New(env, MallocTuneJs, "mallocTune"));
  exports.Set("mallocInfo", Napi::Function::New(env, MallocInfoJs, "mallocInfo"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrimJs, "mallocTrim"));
}

}  // namespace dpo
