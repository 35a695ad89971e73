// Durability primitives for the commit protocol. POSIX only promises that data and directory
// entries survive a crash once fsync'd: a file's bytes by fsync(file), its name (create / rename)
// by fsync(the directory holding it).
#pragma once

#include <string>

namespace flywheel {

void fsync_file(const std::string& path);
void fsync_directory(const std::string& path);
// rename(2) then fsync of the destination's directory. Throws naming both paths.
void rename_durably(const std::string& from, const std::string& to);
// Replaces `path` atomically with `text`: writes path.tmp, fsyncs it, renames it over path, fsyncs
// the directory. A reader sees the old or the new content, never a mix.
void replace_file_atomically(const std::string& path, const std::string& text);

}  // namespace flywheel
