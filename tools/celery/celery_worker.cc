// celery_worker: a Celery worker on a forkserver Pool, serving the example
// tasks (example_tasks.cc). See README, "Running Celery tasks on forkserver".

#include <cstdio>

#include "lib/forkserver.h"
#include "tools/celery/worker_main.h"

int main(int argc, char** argv) {
  // First: this binary is also its own fork server and spawned workers.
  if (absl::Status s = forkserver::Init(argc, argv); !s.ok()) {
    std::fprintf(stderr, "forkserver::Init: %s\n", s.ToString().c_str());
    return 1;
  }
  return forkserver::celery::CeleryWorkerMain(argc, argv);
}
