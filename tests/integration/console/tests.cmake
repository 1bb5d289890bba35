spoke_script_test(test_console python3 ${CMAKE_CURRENT_LIST_DIR}/test_console.py LABELS integration TIMEOUT 180)
if(TEST test_console)
  set_tests_properties(test_console PROPERTIES SKIP_RETURN_CODE 77)
endif()
