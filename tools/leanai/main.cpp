// leanai: train, evaluate, run and inspect models.
#include <cstdio>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "leanai/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"leanai: train, shrink, deploy and monitor lean models on CPUs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "leanai 0.1.0");
  leanai::cli::add_train_command(app);
  leanai::cli::add_eval_command(app);
  leanai::cli::add_predict_command(app);
  leanai::cli::add_info_command(app);
  leanai::cli::add_bench_command(app);
  leanai::cli::add_import_command(app);
  leanai::cli::add_export_onnx_command(app);
  leanai::cli::add_hw_command(app);
  leanai::cli::add_value_command(app);
  leanai::cli::add_sensitivity_command(app);
  leanai::cli::add_quantize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, with the way out.
    std::string msg = e.what();
    if (app.get_subcommands().empty() && argc > 1) {
      // CLI11 reports any unknown first word as "A subcommand is required": name it.
      std::string names;
      for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
        names += (names.empty() ? "" : ", ") + sub->get_name();
      msg = std::string(argv[1][0] == '-' ? "unknown option '" : "unknown subcommand '") + argv[1] +
            "'; the subcommands are " + names;
    }
    std::fprintf(stderr, "leanai: error: %s (see 'leanai %s--help')\n", msg.c_str(),
                 app.get_subcommands().empty() ? "" : (app.get_subcommands()[0]->get_name() + " ").c_str());
    return 2;
  } catch (const leanai::Error& e) {
    std::fprintf(stderr, "leanai: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "leanai: error: out of memory; try a smaller --batch-size\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "leanai: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
