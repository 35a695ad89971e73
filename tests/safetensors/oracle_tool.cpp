// The C++ side of tests/safetensors/oracle.py, which checks our safetensors reader and writer against
// files and a parser it writes itself:
//   oracle_tool read PATH OUTDIR   every tensor of PATH (file, index or directory) as raw fp32 in
//                                  OUTDIR/<name>.f32, rows [1, 3) of those with 3 or more in
//                                  <name>.rows.f32, and "bytes_read N" of those row reads on stdout
//   oracle_tool write OUTDIR       our F32 and BF16 files and a sharded model, with the fp32 source
//                                  values in OUTDIR/source/<name>.f32
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "ckpt/safetensors.h"
#include "ckpt/safetensors_index.h"

namespace st = flywheel::safetensors;

namespace {

void dump(const std::string& path, const flywheel::Tensor& t) {
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
}

int read_command(const std::string& path, const std::string& out) {
  std::filesystem::create_directories(out);
  const st::Model model(path);
  for (const std::string& name : model.names())
    dump(out + "/" + name + ".f32", model.read_rows_f32(name, 0, model.tensor(name).rows()));
  const uint64_t before = model.bytes_read();
  for (const std::string& name : model.names())
    if (!model.tensor(name).shape.empty() && model.tensor(name).rows() >= 3)
      dump(out + "/" + name + ".rows.f32", model.read_rows_f32(name, 1, 3));
  std::cout << "bytes_read " << model.bytes_read() - before << "\n";
  return 0;
}

// Values spanning many binades, with exact bf16 ties and specials, so rounding is exercised.
std::vector<float> values(size_t n, int seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(std::sin(0.37 * double(i) + seed) * std::pow(10.0, double(int(i % 9) - 4)));
  if (n > 4) v[0] = 1.00390625f, v[1] = 1.01171875f, v[2] = -INFINITY, v[3] = 3.0e38f;  // ties up / down
  return v;
}

int write_command(const std::string& out) {
  std::filesystem::create_directories(out + "/source");
  std::filesystem::create_directories(out + "/sharded");
  std::vector<st::Source> sources;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"model.embed_tokens.weight", {12, 8}}, {"model.norm.weight", {8}}, {"lm_head.weight", {12, 8}},
      {"model.layers.0.mlp.up_proj.weight", {6, 8}}, {"scalar", {}}, {"empty", {0, 3}}};
  int seed = 0;
  for (const auto& [name, shape] : shapes) {
    const std::vector<float> v = values(static_cast<size_t>(flywheel::shape_numel(shape)), seed++);
    std::ofstream(out + "/source/" + name + ".f32", std::ios::binary)
        .write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
    sources.push_back({name, shape, [v] { return v; }});
  }
  st::WriteOptions options;
  options.metadata = {{"producer", "oracle_tool"}};
  st::write_file(out + "/our_f32.safetensors", sources, options);
  options.dtype = flywheel::DType::kBF16;
  st::write_file(out + "/our_bf16.safetensors", sources, options);
  options.dtype = flywheel::DType::kF32;
  st::write_model(out + "/sharded", sources, options, 500);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "read" && argc == 4) return read_command(argv[2], argv[3]);
    if (command == "write" && argc == 3) return write_command(argv[2]);
    std::cerr << "usage: oracle_tool read PATH OUTDIR | write OUTDIR\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "oracle_tool: " << e.what() << "\n";
    return 1;
  }
}
