// Error handling: exceptions that carry context, and check macros.
//
// Policy (see docs/architecture.md): code deep inside the library throws flywheel::Error with
// what went wrong, which input (file, option, line, rank) and what is allowed. Only main()
// turns an error into an exit code; under MPI a fatal error on one rank aborts the job.
//
// Two kinds, told apart by who must act:
//   FW_CHECK / FW_THROW              an internal error (a bug, a broken invariant, a failed system
//                                    call): the message starts with "src/file.cpp:line: ".
//   FW_INPUT_CHECK / FW_INPUT_THROW  bad input from the user (a shape key, a data or shape file, a
//                                    command-line value): an InputError whose message names the
//                                    input and what is allowed, and nothing else; where it was
//                                    raised is kept in origin() (main prints it at FLYWHEEL_LOG=debug).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace flywheel {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InputError : public Error {
 public:
  explicit InputError(const std::string& message, std::string origin = "")
      : Error(message), origin_(std::move(origin)) {}
  // "src/launch/shape.cpp:125" where the check failed, or "" when thrown without the macros.
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
[[noreturn]] void throw_input_error(const char* file, int line, const std::string& message);

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

// FW_INPUT_THROW(args...): throw flywheel::InputError("<args...>"), its origin <file>:<line>.
#define FW_INPUT_THROW(...) \
  ::flywheel::detail::throw_input_error(__FILE__, __LINE__, ::flywheel::detail::concat(__VA_ARGS__))

// FW_INPUT_CHECK(cond, args...): refuse the user's input with the message when cond is false.
#define FW_INPUT_CHECK(cond, ...)             \
  do {                                        \
    if (!(cond)) FW_INPUT_THROW(__VA_ARGS__); \
  } while (0)
