#include "lib/pool/pool.h"

#include "lib/pool/pool_core.h"

namespace forkserver {

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(PoolOptions options) {
  absl::StatusOr<std::shared_ptr<PoolCore>> core =
      PoolCore::Create(std::move(options));
  if (!core.ok()) return core.status();
  return std::unique_ptr<Pool>(new Pool(*std::move(core)));
}

Pool::~Pool() { core_->Shutdown(); }

absl::StatusOr<AsyncResult> Pool::ApplyAsyncBytes(absl::string_view task,
                                                  std::string arg,
                                                  CallOptions options) {
  std::vector<std::string> args;
  args.push_back(std::move(arg));
  absl::StatusOr<std::shared_ptr<internal::JobState>> job =
      core_->Submit(internal::JobKind::kApply, task,
                    internal::JobArgs::Strings(std::move(args)),
                    std::move(options));
  if (!job.ok()) return job.status();
  return AsyncResult(*std::move(job));
}

absl::StatusOr<MapResult> Pool::MapAsyncBytes(absl::string_view task,
                                              std::vector<std::string> args,
                                              CallOptions options) {
  return MapAsyncArgs(task, internal::JobArgs::Strings(std::move(args)),
                      std::move(options));
}

absl::StatusOr<MapResult> Pool::MapAsyncArgs(absl::string_view task,
                                             internal::JobArgs args,
                                             CallOptions options) {
  absl::StatusOr<std::shared_ptr<internal::JobState>> job = core_->Submit(
      internal::JobKind::kMap, task, std::move(args), std::move(options));
  if (!job.ok()) return job.status();
  return MapResult(*std::move(job));
}

absl::StatusOr<ImapIterator> Pool::ImapBytes(absl::string_view task,
                                             std::vector<std::string> args,
                                             bool ordered,
                                             CallOptions options) {
  return ImapArgs(task, internal::JobArgs::Strings(std::move(args)), ordered,
                  std::move(options));
}

absl::StatusOr<ImapIterator> Pool::ImapArgs(absl::string_view task,
                                            internal::JobArgs args,
                                            bool ordered, CallOptions options) {
  absl::StatusOr<std::shared_ptr<internal::JobState>> job = core_->Submit(
      ordered ? internal::JobKind::kImap : internal::JobKind::kImapUnordered,
      task, std::move(args), std::move(options));
  if (!job.ok()) return job.status();
  return ImapIterator(*std::move(job));
}

absl::Status Pool::TerminateJob(pid_t pid, int signal) {
  return core_->TerminateJob(pid, signal);
}
absl::Status Pool::Grow(int n) { return core_->Grow(n); }
absl::Status Pool::Shrink(int n) { return core_->Shrink(n); }
absl::Status Pool::Restart() { return core_->Restart(); }
bool Pool::DidStartOk(absl::Duration timeout) {
  return core_->DidStartOk(timeout);
}
void Pool::Close() { core_->Close(); }
absl::Status Pool::Terminate() { return core_->Terminate(); }
absl::Status Pool::Join() { return core_->Join(); }
std::vector<std::pair<int, std::function<void()>>> Pool::Readers() {
  return core_->Readers();
}
absl::Status Pool::MaintainPool() { return core_->MaintainPool(); }
std::vector<WorkerInfo> Pool::Workers() const { return core_->Workers(); }
int Pool::processes() const { return core_->processes(); }
int64_t Pool::CallbackErrors() const { return core_->CallbackErrors(); }

}  // namespace forkserver
