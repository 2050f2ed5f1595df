// SPDX-License-Identifier: BSL-1.0
// tests/plugins/not_a_plugin.cpp: a shared library without PROCPOOL_PLUGIN(), which load_plugin must refuse.
extern "C" int not_a_plugin_answer() { return 42; }
