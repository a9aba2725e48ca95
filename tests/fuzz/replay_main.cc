// Runs every file of the corpus directories named on the command line
// through LLVMFuzzerTestOneInput once: the fuzz target as a regression test
// (under ASan+UBSan with --config=asan), no libFuzzer needed.

#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int inputs = 0;
  for (int i = 1; i < argc; ++i) {
    DIR* dir = ::opendir(argv[i]);
    if (dir == nullptr) {
      std::fprintf(stderr, "cannot open corpus %s\n", argv[i]);
      return 1;
    }
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      std::ifstream file(std::string(argv[i]) + "/" + entry->d_name,
                         std::ios::binary);
      std::stringstream content;
      content << file.rdbuf();
      const std::string bytes = content.str();
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size());
      ++inputs;
    }
    ::closedir(dir);
  }
  std::printf("replayed %d inputs\n", inputs);
  return inputs > 0 ? 0 : 1;
}
