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
// adviseHugePages(ab): asks Linux to back the whole 2 MiB pages inside an ArrayBuffer with
//   transparent huge pages (madvise MADV_HUGEPAGE; the usual THP mode "madvise" does nothing
//   without it). Called on large fresh tensor blocks before their first write: the GEMM packers
//   walk operands down rows thousands of floats apart, one 4 KiB page per row, and with 2 MiB
//   pages the TLB misses go away (+2-5% on the GPT-2 step's matrix products). Returns the bytes
//   advised (0: nothing to do or not supported).
// On other C libraries the malloc functions do nothing (mallocInfo returns null).
// N-API only (like napi.cc, left out of the WebAssembly build): registered by napi.cc's Init.
#include <napi.h>

#include <cstdint>
#if defined(__linux__)
#include <sys/mman.h>
#endif
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

static Napi::Value AdviseHugePagesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "adviseHugePages: argument 0 must be an ArrayBuffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double advised = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(ab.Data());
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = (begin + ab.ByteLength()) & ~(kHuge - 1);
  // Only the whole huge pages inside the buffer: its neighbours' pages are left as they are.
  if (begin != 0 && hi > lo && madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) == 0) advised = double(hi - lo);
#endif
  return Napi::Number::New(env, advised);
}

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("freeArrayBuffer", Napi::Function::New(env, FreeArrayBufferJs, "freeArrayBuffer"));
  exports.Set("mallocTune", Napi::Function::New(env, MallocTuneJs, "mallocTune"));
  exports.Set("mallocInfo", Napi::Function::New(env, MallocInfoJs, "mallocInfo"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrimJs, "mallocTrim"));
  exports.Set("adviseHugePages", Napi::Function::New(env, AdviseHugePagesJs, "adviseHugePages"));
}

}  // namespace dpo
