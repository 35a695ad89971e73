// Error handling: exceptions that carry context, and check macros that name file:line.
//
// Policy (see docs/architecture.md): code deep inside the library throws flywheel::Error with
// what went wrong, which input (file, option, line, rank) and what is allowed. Only main()
// turns an error into an exit code; under MPI a fatal error on one rank aborts the job.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace flywheel {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

// Streams any number of arguments into one string: concat("layers=", 3, " must be > 0").
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace flywheel

// FW_THROW(args...): throw flywheel::Error("<file>:<line>: <args...>").
#define FW_THROW(...) ::flywheel::detail::throw_error(__FILE__, __LINE__, ::flywheel::detail::concat(__VA_ARGS__))

// FW_CHECK(cond, args...): throw with the message when cond is false.
#define FW_CHECK(cond, ...)            \
  do {                                 \
    if (!(cond)) FW_THROW(__VA_ARGS__); \
  } while (0)
