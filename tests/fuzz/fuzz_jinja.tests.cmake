spoke_fuzzer(fuzz_jinja ${CMAKE_CURRENT_LIST_DIR}/fuzz_jinja.c)
