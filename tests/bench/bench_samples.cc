#include "tests/bench/bench_samples.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace forkserver {
namespace bench {

void DumpSamples(const std::string& name, const std::vector<double>& micros) {
  const char* dir = std::getenv("BENCH_SAMPLES_DIR");
  if (dir == nullptr || *dir == '\0') return;
  std::string slug;
  for (char c : name) {
    slug += std::isalnum(static_cast<unsigned char>(c))
                ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                : '_';
  }
  const std::string path = std::string(dir) + "/" + slug + ".txt";
  std::FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr) {
    std::perror(path.c_str());
    return;
  }
  std::fprintf(out, "# %s\n", name.c_str());
  for (double us : micros) std::fprintf(out, "%.3f\n", us);
  std::fclose(out);
}

void DumpSamples(const std::string& name,
                 const std::vector<absl::Duration>& sample) {
  std::vector<double> micros;
  micros.reserve(sample.size());
  for (absl::Duration d : sample) micros.push_back(absl::ToDoubleMicroseconds(d));
  DumpSamples(name, micros);
}

double QuantileOf(std::vector<double> sample, double q) {
  if (sample.empty()) return 0;
  std::sort(sample.begin(), sample.end());
  const double rank = std::ceil(q * static_cast<double>(sample.size()));
  const size_t index =
      static_cast<size_t>(std::clamp(rank, 1.0, double(sample.size()))) - 1;
  return sample[index];
}

}  // namespace bench
}  // namespace forkserver
