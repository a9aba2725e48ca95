// File: tools/celery/worker_main.h
// -----------------------------------------------------------------------------
// main() of a Celery worker binary: flags in the spirit of `celery worker`,
// signals (SIGTERM/SIGINT: warm shutdown, a second one or SIGQUIT: cold,
// SIGUSR1: a status line), then Worker::Run. A binary links the tasks it
// serves and calls this after forkserver::Init:
//
//   int main(int argc, char** argv) {
//     if (!forkserver::Init(argc, argv).ok()) return 1;
//     return forkserver::celery::CeleryWorkerMain(argc, argv);
//   }

#ifndef FORKSERVER_TOOLS_CELERY_WORKER_MAIN_H_
#define FORKSERVER_TOOLS_CELERY_WORKER_MAIN_H_

namespace forkserver {
namespace celery {

int CeleryWorkerMain(int argc, char** argv);

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_TOOLS_CELERY_WORKER_MAIN_H_
