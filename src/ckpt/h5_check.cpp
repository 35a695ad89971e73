#include "ckpt/h5_check.h"

#include <hdf5.h>

#include <mutex>
#include <vector>

namespace flywheel {

void h5_silence_error_printing() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

namespace detail {
namespace {

herr_t collect_entry(unsigned /*n*/, const H5E_error2_t* entry, void* out) {
  auto* lines = static_cast<std::vector<std::string>*>(out);
  std::string text = entry->func_name ? entry->func_name : "?";
  text += "(): ";
  text += entry->desc ? entry->desc : "(no description)";
  lines->push_back(std::move(text));
  return 0;
}

}  // namespace

std::string h5_error_stack_message() {
  std::vector<std::string> lines;
  // Downward: entry 0 is the API function the caller called, the last one the deepest cause.
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_entry, &lines);
  H5Eclear2(H5E_DEFAULT);
  if (lines.empty()) return "no HDF5 error message";
  if (lines.size() == 1) return lines.front();
  return lines.front() + " (cause: " + lines.back() + ")";
}

std::string h5_error_cause() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_entry, &lines);
  H5Eclear2(H5E_DEFAULT);
  if (lines.empty()) return "no HDF5 error message";
  const std::string& deepest = lines.back();
  const size_t call = deepest.find("(): ");
  return call == std::string::npos ? deepest : deepest.substr(call + 4);
}

}  // namespace detail
}  // namespace flywheel
