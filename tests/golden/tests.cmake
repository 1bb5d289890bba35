spoke_test(test_golden ${CMAKE_CURRENT_LIST_DIR}/test_golden.c LABELS golden TIMEOUT 300)
spoke_test(test_kquant ${CMAKE_CURRENT_LIST_DIR}/test_kquant.c LABELS golden TIMEOUT 300)
spoke_script_test(test_cli python3 ${CMAKE_CURRENT_LIST_DIR}/test_cli.py LABELS golden TIMEOUT 300)
# the family traces are slow under ASan (minutes); test_arch_load covers those code paths there
spoke_test(test_arch ${CMAKE_CURRENT_LIST_DIR}/test_arch.c LABELS golden no-asan TIMEOUT 300)
spoke_test(test_swa ${CMAKE_CURRENT_LIST_DIR}/test_swa.c LABELS golden TIMEOUT 300)
spoke_script_test(test_arch_cli python3 ${CMAKE_CURRENT_LIST_DIR}/test_arch_cli.py LABELS golden no-asan TIMEOUT 300)
# the same traces in spoke's default float order (production's), F32 files, looser logprob bounds
spoke_script_test(test_arch_default env SPOKE_ARCH_DEFAULT_ORDER=1 $<TARGET_FILE:test_arch> LABELS golden no-asan TIMEOUT 300)
if(TEST test_arch_default)
  set_tests_properties(test_arch_default PROPERTIES SKIP_RETURN_CODE 77)
endif()
