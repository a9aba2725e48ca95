// The worker the tests start: celery_worker's main with the example tasks
// and tests/celery/test_tasks.cc.

#include <cstdio>

#include "lib/forkserver.h"
#include "tools/celery/worker_main.h"

int main(int argc, char** argv) {
  if (absl::Status s = forkserver::Init(argc, argv); !s.ok()) {
    std::fprintf(stderr, "forkserver::Init: %s\n", s.ToString().c_str());
    return 1;
  }
  return forkserver::celery::CeleryWorkerMain(argc, argv);
}
