spoke_fuzzer(fuzz_config ${CMAKE_CURRENT_LIST_DIR}/fuzz_config.c)
