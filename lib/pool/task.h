// File: lib/pool/task.h
// -----------------------------------------------------------------------------
// Pool tasks: typed functions registered by name, run in pool workers.
//
//   absl::StatusOr<SquareReply> Square(const SquareRequest& request,
//                                      forkserver::TaskContext& context) {
//     SquareReply reply;
//     reply.set_value(request.value() * request.value());
//     return reply;
//   }
//   FORKSERVER_REGISTER_TASK(Square);
//
// A task takes one or more arguments by const reference and a
// TaskContext&, and returns absl::StatusOr<R>. Argument and result types:
// Protobuf messages, std::string (raw bytes), arithmetic types, and (for
// results) std::vector of those. Encodings: a string is its bytes, an
// arithmetic value its native bytes, a vector of arithmetic values (not
// bool) those back to back (lib/pool/flat_codec.h), a vector of anything
// else each element length-prefixed. A task with several arguments is called
// with a std::tuple of them (Pool::Apply, Pool::Starmap). A returned error
// status, or an exception the task throws, comes back to the caller as a
// task error (lib/pool_errors.h); a crash of the worker as WorkerLost.
//
// Why a plain function plus a registration line (and not a macro around
// the signature): the argument and result types are deduced from the
// function, any mismatch is an ordinary compile error, and the function
// can be called and tested directly.

#ifndef FORKSERVER_LIB_POOL_TASK_H_
#define FORKSERVER_LIB_POOL_TASK_H_

#include <sys/types.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"
#include "lib/pool/flat_codec.h"
#include "lib/registry/registry.h"

namespace forkserver {

// What a running task knows about where it runs.
class TaskContext {
 public:
  TaskContext(int worker_index, int64_t job_id,
              const volatile sig_atomic_t* soft_limit_flag)
      : worker_index_(worker_index),
        job_id_(job_id),
        soft_limit_flag_(soft_limit_flag) {}

  // True once the job's soft time limit passed (the pool sent SIGUSR1,
  // which also interrupts blocking system calls with EINTR). The task may
  // stop early (returning SoftTimeLimitExceededError() or a partial
  // result) or carry on until the hard limit.
  bool SoftTimeLimitExceeded() const {
    return soft_limit_flag_ != nullptr && *soft_limit_flag_ != 0;
  }
  // The worker's slot, 0..processes-1; a replacement reuses it.
  int worker_index() const { return worker_index_; }
  int64_t job_id() const { return job_id_; }

 private:
  int worker_index_;
  int64_t job_id_;
  const volatile sig_atomic_t* soft_limit_flag_;
};

// ---- Encoding of arguments and results.

template <typename T, typename Enable = void>
struct TaskCodec;  // No codec for this type: see the list above.

template <>
struct TaskCodec<std::string> {
  static std::string Encode(const std::string& value) { return value; }
  static absl::Status Decode(absl::string_view bytes, std::string* value) {
    value->assign(bytes.data(), bytes.size());
    return absl::OkStatus();
  }
};

template <typename T>
struct TaskCodec<T, std::enable_if_t<std::is_arithmetic_v<T>>> {
  static std::string Encode(const T& value) {
    std::string bytes(sizeof(T), '\0');
    std::memcpy(bytes.data(), &value, sizeof(T));
    return bytes;
  }
  static absl::Status Decode(absl::string_view bytes, T* value) {
    if (bytes.size() != sizeof(T)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expected ", sizeof(T), " bytes for an arithmetic value, got ",
          bytes.size()));
    }
    std::memcpy(value, bytes.data(), sizeof(T));
    return absl::OkStatus();
  }
};

template <typename T>
struct TaskCodec<
    T, std::enable_if_t<std::is_base_of_v<google::protobuf::MessageLite, T>>> {
  static std::string Encode(const T& value) { return value.SerializeAsString(); }
  static absl::Status Decode(absl::string_view bytes, T* value) {
    if (!value->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::InvalidArgumentError(
          absl::StrCat("undecodable ", value->GetTypeName()));
    }
    return absl::OkStatus();
  }
};

namespace internal {

// A sequence of values: each as a 4-byte little-endian length and bytes.
void AppendField(std::string& out, absl::string_view field);
// Splits what AppendField wrote; INVALID_ARGUMENT if malformed.
absl::StatusOr<std::vector<absl::string_view>> SplitFields(
    absl::string_view bytes);

}  // namespace internal

// Arithmetic elements: one block, one memcpy each way.
template <typename T>
struct TaskCodec<std::vector<T>, std::enable_if_t<internal::kFlatType<T>>> {
  static std::string Encode(const std::vector<T>& values) {
    return internal::PackFlat(values);
  }
  static absl::Status Decode(absl::string_view bytes, std::vector<T>* values) {
    values->clear();
    return internal::UnpackFlat(bytes, values);
  }
};

template <typename T>
struct TaskCodec<std::vector<T>, std::enable_if_t<!internal::kFlatType<T>>> {
  static std::string Encode(const std::vector<T>& values) {
    std::string out;
    for (const T& value : values) {
      internal::AppendField(out, TaskCodec<T>::Encode(value));
    }
    return out;
  }
  static absl::Status Decode(absl::string_view bytes, std::vector<T>* values) {
    absl::StatusOr<std::vector<absl::string_view>> fields =
        internal::SplitFields(bytes);
    if (!fields.ok()) return fields.status();
    values->clear();
    values->reserve(fields->size());
    for (absl::string_view field : *fields) {
      // Through a local: std::vector<bool> has no addressable elements.
      T value{};
      absl::Status decoded = TaskCodec<T>::Decode(field, &value);
      if (!decoded.ok()) return decoded;
      values->push_back(std::move(value));
    }
    return absl::OkStatus();
  }
};

template <typename... Ts>
struct TaskCodec<std::tuple<Ts...>> {
  static std::string Encode(const std::tuple<Ts...>& values) {
    std::string out;
    std::apply(
        [&out](const Ts&... v) {
          (internal::AppendField(out, TaskCodec<Ts>::Encode(v)), ...);
        },
        values);
    return out;
  }
  static absl::Status Decode(absl::string_view bytes,
                             std::tuple<Ts...>* values) {
    absl::StatusOr<std::vector<absl::string_view>> fields =
        internal::SplitFields(bytes);
    if (!fields.ok()) return fields.status();
    if (fields->size() != sizeof...(Ts)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expected ", sizeof...(Ts), " arguments, got ", fields->size()));
    }
    return DecodeEach(*fields, values, std::index_sequence_for<Ts...>());
  }

 private:
  template <size_t... I>
  static absl::Status DecodeEach(const std::vector<absl::string_view>& fields,
                                 std::tuple<Ts...>* values,
                                 std::index_sequence<I...>) {
    absl::Status status;
    ((status.ok() ? (status = TaskCodec<Ts>::Decode(fields[I],
                                                    &std::get<I>(*values)))
                  : status),
     ...);
    return status;
  }
};

namespace internal {

// Appends TaskCodec<T>::Encode(value) to `out`, without a string in
// between where the type allows (a pool worker gathers a chunk's results
// in one buffer).
template <typename T>
void AppendEncoded(std::string& out, const T& value) {
  if constexpr (std::is_arithmetic_v<T>) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(T));
  } else if constexpr (std::is_same_v<T, std::string>) {
    out += value;
  } else {
    out += TaskCodec<T>::Encode(value);
  }
}

}  // namespace internal

// ---- Registration.

// Decodes `arg`, runs the task, and appends its encoded result to
// `result` (on an error, what it appended is to be dropped).
using TaskInvoker = absl::Status (*)(absl::string_view arg,
                                     TaskContext& context, std::string& result);

// The registered task `name`, or nullptr.
TaskInvoker FindTask(absl::string_view name);

namespace internal {

template <auto F>
struct TaskAdapter;

// absl::StatusOr<R> F(const A1&, ..., TaskContext&): decodes the
// arguments, calls F, encodes its result.
template <typename R, typename... P, absl::StatusOr<R> (*F)(P...)>
struct TaskAdapter<F> {
  static constexpr size_t kArgCount = sizeof...(P) - 1;
  static_assert(sizeof...(P) >= 2,
                "a task takes at least one argument and a TaskContext&");
  using AllParameters = std::tuple<P...>;
  static_assert(std::is_same_v<std::tuple_element_t<kArgCount, AllParameters>,
                               TaskContext&>,
                "a task's last parameter must be TaskContext&");

  template <size_t... I>
  static auto ArgumentsOf(std::index_sequence<I...>)
      -> std::tuple<std::decay_t<std::tuple_element_t<I, AllParameters>>...>;
  using Arguments =
      decltype(ArgumentsOf(std::make_index_sequence<kArgCount>()));

  static absl::Status Invoke(absl::string_view bytes, TaskContext& context,
                             std::string& out) {
    Arguments args;
    absl::Status decoded;
    if constexpr (kArgCount == 1) {
      decoded = TaskCodec<std::tuple_element_t<0, Arguments>>::Decode(
          bytes, &std::get<0>(args));
    } else {
      decoded = TaskCodec<Arguments>::Decode(bytes, &args);
    }
    if (!decoded.ok()) return decoded;
    absl::StatusOr<R> result = std::apply(
        [&context](const auto&... a) { return F(a..., context); }, args);
    if (!result.ok()) return result.status();
    AppendEncoded(out, *result);
    return absl::OkStatus();
  }
};

}  // namespace internal
}  // namespace forkserver

#define FORKSERVER_REGISTER_TASK(function)                              \
  static const ::forkserver::internal::Registrar<                       \
      ::forkserver::internal::RegistryKind::kTask>                      \
      forkserver_task_registrar_##function(                             \
          #function, &::forkserver::internal::TaskAdapter<&function>::Invoke)

#endif  // FORKSERVER_LIB_POOL_TASK_H_
